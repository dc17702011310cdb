"""The rest of the v2 surface of the pinned client (google-cloud-tasks 2.26.0), over gRPC and
REST: BatchCreateTasks, BatchDeleteTasks and their operations (GetOperation), Get/UpdateCmekConfig,
a task's own retryConfig, output-only maxBurstSize, and Cloud Tasks' own wording of its errors."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
from google.api_core import exceptions
from google.cloud import tasks_v2
from google.protobuf import field_mask_pb2

from ordertasks.infra.emulator.errors import TASK_EXISTED_RECENTLY
from tests.emulator.conftest import LOCATION, PARENT, PROJECT, Emulator, start_emulator
from tests.emulator.receiver import Receiver, Reply
from tests.emulator.test_client_tasks import LATER, at, http_task
from tests.emulator.test_surface import rest
from tests.support.servers import wait_until

State = tasks_v2.BatchCreateTasksMetadata.State
KMS_KEY = f"projects/{PROJECT}/locations/{LOCATION}/keyRings/shop/cryptoKeys/tasks"


def later_task(queue: str, task_id: str, **extra) -> dict:  # type: ignore[no-untyped-def, type-arg]
    """A named task scheduled an hour ahead (left alone by the dispatcher)."""
    return http_task(name=f"{queue}/tasks/{task_id}", schedule_time=at(LATER), **extra)


def in_an_hour() -> str:
    """RFC 3339 text an hour from now."""
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def gone(client, name: str) -> bool:  # type: ignore[no-untyped-def]
    """True once GetTask answers NOT_FOUND for ``name``."""
    try:
        client.get_task(name=name)
        return False
    except exceptions.NotFound:
        return True


# -- BatchCreateTasks / BatchDeleteTasks / GetOperation ------------------------------------------

def test_batch_create_creates_each_task_and_reports_failures_by_index(client, make_queue) -> None:
    queue = make_queue()
    client.create_task(parent=queue, task=later_task(queue, "taken"))

    operation = client.batch_create_tasks(parent=queue, requests=[
        {"parent": queue, "task": later_task(queue, "first")},
        {"parent": queue, "task": later_task(queue, "taken")},
        {"task": later_task(queue, "third"), "response_view": tasks_v2.Task.View.FULL}])

    assert operation.done()
    created = operation.result()
    assert [t.name for t in created.tasks] == [f"{queue}/tasks/first", f"{queue}/tasks/third"]
    assert created.tasks[1].view == tasks_v2.Task.View.FULL
    assert operation.metadata.state == State.PARTIALLY_SUCCEEDED
    failed = dict(operation.metadata.failed_requests)
    assert list(failed) == [1] and failed[1].code == 6 and failed[1].message == "Requested entity already exists"
    assert {t.name.rsplit("/", 1)[1] for t in client.list_tasks(parent=queue)} == {"taken", "first", "third"}
    again = client.get_operation({"name": operation.operation.name})
    assert again.done and again.name.startswith(f"{PARENT}/operations/")


def test_batch_create_in_which_nothing_succeeds_is_aborted(client, make_queue) -> None:
    queue = make_queue()

    operation = client.batch_create_tasks(parent=queue, requests=[
        {"task": http_task(url="ftp://example.com/")}, {"task": {"name": "not-a-task-name"}}])

    with pytest.raises(exceptions.Aborted, match="None of the requests succeeded"):
        operation.result()
    assert sorted(operation.metadata.failed_requests) == [0, 1]
    assert list(client.list_tasks(parent=queue)) == []


def test_batch_create_with_a_request_id_runs_once(client, make_queue) -> None:
    queue = make_queue()
    request = {"parent": queue, "requests": [{"task": later_task(queue, "once")}], "request_id": uuid.uuid4().hex}

    first = client.batch_create_tasks(request=request)
    retried = client.batch_create_tasks(request=request)

    assert retried.operation.name == first.operation.name
    assert retried.metadata.state == State.SUCCEEDED and not retried.metadata.failed_requests


def test_a_batch_that_breaks_the_limits_is_refused_whole(client, make_queue) -> None:
    queue, other = make_queue(), make_queue()

    with pytest.raises(exceptions.BadRequest, match="at most 100"):
        client.batch_create_tasks(parent=queue, requests=[{"task": http_task()}] * 101)
    with pytest.raises(exceptions.BadRequest, match="must be the batch's queue"):
        client.batch_create_tasks(parent=queue, requests=[{"task": later_task(queue, "a")},
                                                          {"parent": other, "task": later_task(other, "b")}])
    with pytest.raises(exceptions.NotFound, match="Queue does not exist"):
        client.batch_create_tasks(parent=queue + "-missing", requests=[{"task": http_task()}])
    with pytest.raises(exceptions.BadRequest, match="at most 1000"):
        client.batch_delete_tasks(parent=queue, names=[f"{queue}/tasks/t{i}" for i in range(1001)])
    assert list(client.list_tasks(parent=queue)) == []


def test_batch_delete_deletes_and_reports_what_it_could_not(client, make_queue) -> None:
    queue = make_queue()
    for task_id in ("one", "two"):
        client.create_task(parent=queue, task=later_task(queue, task_id))

    operation = client.batch_delete_tasks(parent=queue, names=[f"{queue}/tasks/one", f"{queue}/tasks/never",
                                                               f"{queue}/tasks/two"])

    operation.result()  # google.protobuf.Empty
    metadata = operation.metadata
    assert metadata.state == tasks_v2.BatchDeleteTasksMetadata.State.PARTIALLY_SUCCEEDED
    assert {i: s.code for i, s in metadata.failed_requests.items()} == {1: 5}
    assert list(client.list_tasks(parent=queue)) == []
    with pytest.raises(exceptions.Conflict, match="existed too recently"):
        client.create_task(parent=queue, task=later_task(queue, "one"))


def test_get_operation_of_an_unknown_name_is_not_found(client) -> None:
    with pytest.raises(exceptions.NotFound, match="Requested entity was not found"):
        client.get_operation({"name": f"{PARENT}/operations/never-started"})


# -- CMEK ----------------------------------------------------------------------------------------

def cmek_name(location: str) -> str:
    """The CMEK config resource of ``location``."""
    return f"projects/{PROJECT}/locations/{location}/cmekConfig"


def test_cmek_config_is_kept_per_location(client) -> None:
    location = f"loc-{uuid.uuid4().hex[:8]}"
    key = f"projects/{PROJECT}/locations/{location}/keyRings/shop/cryptoKeys/tasks"
    mask = field_mask_pb2.FieldMask(paths=["kms_key"])

    assert client.get_cmek_config(name=cmek_name(location)) == tasks_v2.CmekConfig(name=cmek_name(location))
    updated = client.update_cmek_config(cmek_config={"name": cmek_name(location), "kms_key": key}, update_mask=mask)

    assert updated.kms_key == key and client.get_cmek_config(name=cmek_name(location)).kms_key == key
    assert client.get_cmek_config(name=cmek_name(location + "x")).kms_key == ""
    client.update_cmek_config(cmek_config={"name": cmek_name(location), "kms_key": ""}, update_mask=mask)
    assert client.get_cmek_config(name=cmek_name(location)).kms_key == ""


@pytest.mark.parametrize("key, message", [
    ("my-key", "not a Cloud KMS key name"),
    (f"projects/{PROJECT}/locations/europe-west1/keyRings/r/cryptoKeys/k", "needs a key in"),
], ids=["not-a-key", "other-location"])
def test_cmek_key_must_be_a_kms_key_in_the_location(client, key: str, message: str) -> None:
    with pytest.raises(exceptions.BadRequest, match=message):
        client.update_cmek_config(cmek_config={"name": cmek_name(LOCATION), "kms_key": key})


def test_cmek_config_survives_a_restart(tmp_path: Path) -> None:
    first = start_emulator(tmp_path)
    try:
        first.client("grpc").update_cmek_config(cmek_config={"name": cmek_name(LOCATION), "kms_key": KMS_KEY})
    finally:
        first.process.stop()
    second = start_emulator(tmp_path, db=first.db)
    try:
        assert second.client("rest").get_cmek_config(name=cmek_name(LOCATION)).kms_key == KMS_KEY
    finally:
        second.process.stop()


# -- a task's own retryConfig ----------------------------------------------------------------------

def test_task_retry_config_is_stored_and_returned(client, make_queue) -> None:
    queue = make_queue(attempts=7)
    retry = {"max_attempts": 3, "max_doublings": 2}

    created = client.create_task(parent=queue, task=later_task(queue, "own-retry", retry_config=retry))

    assert created.retry_config.max_attempts == 3 and created.retry_config.max_doublings == 2
    full = client.get_task(request={"name": created.name, "response_view": tasks_v2.Task.View.FULL})
    assert full.retry_config.max_attempts == 3
    assert full.retry_config.max_backoff.total_seconds() == 3600  # not set: a new queue's default
    plain = client.create_task(parent=queue, task=later_task(queue, "queue-retry"))
    assert "retry_config" not in tasks_v2.Task.to_dict(plain, including_default_value_fields=False)


def test_task_with_max_attempts_1_against_a_failing_target_gets_one_attempt(client, make_queue,
                                                                             receiver: Receiver) -> None:
    queue = make_queue(attempts=100, min_backoff=0.05, max_backoff=0.05)
    receiver.script("/fails", [Reply(500)])

    task = client.create_task(parent=queue, task=http_task(url=receiver.url("/fails"),
                                                           retry_config={"max_attempts": 1}))

    wait_until(lambda: gone(client, task.name), timeout=10, what="the task given up after its one attempt")
    assert len(receiver.received("/fails")) == 1


def test_task_retry_config_is_checked_like_a_queues(client, make_queue) -> None:
    queue = make_queue()

    with pytest.raises(exceptions.BadRequest, match=r"task\.retryConfig\.maxAttempts"):
        client.create_task(parent=queue, task=http_task(retry_config={"max_attempts": -2}))


# -- output-only maxBurstSize --------------------------------------------------------------------

def test_an_update_leaves_the_output_only_max_burst_size_alone(client, make_queue) -> None:
    queue = make_queue(rate=20, burst=7)
    named = field_mask_pb2.FieldMask(paths=["rate_limits.max_burst_size"])
    group = field_mask_pb2.FieldMask(paths=["rate_limits"])

    only_burst = client.update_queue(queue={"name": queue, "rate_limits": {"max_burst_size": 3}}, update_mask=named)
    with_rate = client.update_queue(queue={"name": queue, "rate_limits": {
        "max_dispatches_per_second": 10, "max_burst_size": 3}}, update_mask=group)

    assert only_burst.rate_limits.max_burst_size == 7 and only_burst.rate_limits.max_dispatches_per_second == 20
    assert with_rate.rate_limits.max_burst_size == 7 and with_rate.rate_limits.max_dispatches_per_second == 10
    assert client.get_queue(name=queue).rate_limits.max_burst_size == 7


# -- Cloud Tasks' wording ---------------------------------------------------------------------------

def test_a_name_used_too_recently_gets_the_whole_real_message(client, make_queue) -> None:
    queue = make_queue()
    client.create_task(parent=queue, task=later_task(queue, "reused"))
    client.delete_task(name=f"{queue}/tasks/reused")

    with pytest.raises(exceptions.Conflict) as refused:
        client.create_task(parent=queue, task=later_task(queue, "reused"))

    assert refused.value.message.endswith(TASK_EXISTED_RECENTLY)
    assert TASK_EXISTED_RECENTLY.endswith("/create#body.request_body.FIELDS.task.")


@pytest.mark.parametrize("name, message", [
    (lambda q: "is-this-a-name", 'Task name must be formatted: "projects/<PROJECT_ID>/locations/<LOCATION_ID>/'
                                 'queues/<QUEUE_ID>/tasks/<TASK_ID>"'),
    (lambda q: f"{q}/tasks/not a valid id", 'Task ID "not a valid id" can contain only letters ([A-Za-z]), '
                                            "numbers ([0-9]), hyphens (-), or underscores (_). Task ID must "
                                            "between 1 and 500 characters."),
    (lambda q: f"{q}-other/tasks/t1", lambda q: f"The queue name from request ('{q}') must be the same as the "
                                                f"queue name in the named task ('{q}-other')."),
], ids=["malformed", "bad-id", "other-queue"])
def test_task_name_errors_are_worded_as_cloud_tasks_words_them(client, make_queue, name, message) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue()
    expected = message(queue) if callable(message) else message

    with pytest.raises(exceptions.BadRequest) as refused:
        client.create_task(parent=queue, task={**http_task(), "name": name(queue)})

    assert refused.value.message.endswith(expected)


def test_app_engine_routing_host_is_filled_in(client, make_queue) -> None:
    queue = make_queue()
    routed = {"relative_uri": "/work", "app_engine_routing": {"service": "worker", "version": "v2"}}

    created = client.create_task(parent=queue, task={"app_engine_http_request": routed, "schedule_time": at(LATER)})
    default = client.create_task(parent=queue, task={"app_engine_http_request": {"relative_uri": "/"},
                                                     "schedule_time": at(LATER)})

    assert created.app_engine_http_request.app_engine_routing.host == f"v2.worker.{PROJECT}.appspot.com"
    assert client.get_task(name=default.name).app_engine_http_request.app_engine_routing.host == f"{PROJECT}.appspot.com"
    client.delete_queue(name=queue)


# -- REST: unknown JSON names ----------------------------------------------------------------------

def test_an_unknown_json_name_is_refused_as_googles_front_end_does(emulator: Emulator, make_queue) -> None:
    queue = make_queue()

    status, answer = rest(emulator, "POST", f"/v2/{queue}/tasks", {"task": {
        "httpRequest": {"url": "http://127.0.0.1:9/", "bogusHeader": 1}, "bogusField": True}})

    assert status == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"
    assert answer["error"]["message"] == (
        "Invalid JSON payload received. Unknown name \"bogusHeader\" at 'task.http_request': Cannot find field.\n"
        "Invalid JSON payload received. Unknown name \"bogusField\" at 'task': Cannot find field.")
    violations = answer["error"]["details"][0]["fieldViolations"]
    assert [v["field"] for v in violations] == ["task.http_request", "task"]
    assert list(emulator.client().list_tasks(parent=queue)) == []


def test_unknown_names_at_the_top_and_inside_lists_are_named(emulator: Emulator, make_queue) -> None:
    queue = make_queue()

    _, top = rest(emulator, "POST", f"/v2/{PARENT}/queues", {"name": f"{PARENT}/queues/x-{uuid.uuid4().hex[:8]}",
                                                             "bogus": 1})
    _, listed = rest(emulator, "POST", f"/v2/{queue}/tasks:batchCreate", {"requests": [{"task": {"oops": 1}}]})

    assert top["error"]["message"] == 'Invalid JSON payload received. Unknown name "bogus": Cannot find field.'
    assert listed["error"]["message"] == ("Invalid JSON payload received. Unknown name \"oops\" at "
                                          "'requests[0].task': Cannot find field.")


def test_proto_field_names_are_accepted_too(emulator: Emulator, make_queue) -> None:
    queue = make_queue()

    status, answer = rest(emulator, "POST", f"/v2/{queue}/tasks", {"task": {
        "http_request": {"url": "http://127.0.0.1:9/", "body": "eA=="}, "schedule_time": in_an_hour()},
        "response_view": "FULL"})

    assert status == 200, answer
    assert answer["httpRequest"]["body"] == "eA==" and answer["view"] == "FULL"


# -- OIDC discovery ------------------------------------------------------------------------------------

def test_oidc_discovery_document_points_at_the_key_set(emulator: Emulator) -> None:
    status, document = rest(emulator, "GET", "/.well-known/openid-configuration")

    assert status == 200
    assert document["issuer"] == "https://accounts.google.com"
    assert document["jwks_uri"] == emulator.endpoint + "/oauth2/v3/certs"
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    _, keys = rest(emulator, "GET", "/oauth2/v3/certs")
    _, pems = rest(emulator, "GET", "/oauth2/v1/certs")
    assert [k["kid"] for k in keys["keys"]] == list(pems)


def test_a_verifier_starting_from_the_issuer_finds_the_keys(tmp_path: Path, receiver: Receiver) -> None:
    import google.auth.transport.requests
    from google.oauth2 import id_token

    from tests.support.servers import free_port

    port = free_port()
    issuer = f"http://127.0.0.1:{port}/oidc"
    emu = start_emulator(tmp_path, port=port, extra=["--issuer", issuer])
    try:
        client = emu.client("grpc")
        queue = client.create_queue(parent=PARENT, queue={"name": f"{PARENT}/queues/issuer"}).name
        client.create_task(parent=queue, task={"http_request": {"url": receiver.url("/signed"), "oidc_token": {
            "service_account_email": "dispatcher@test-project.iam.gserviceaccount.com", "audience": "shop"}}})
        request = wait_until(lambda: receiver.received("/signed"), timeout=10, what="the signed delivery")[0]

        _, document = rest(emu, "GET", "/oidc/.well-known/openid-configuration")
        token = (request.header("Authorization") or "").removeprefix("Bearer ")
        claims = id_token.verify_token(token, google.auth.transport.requests.Request(), audience="shop",
                                       certs_url=document["jwks_uri"])
        assert document["issuer"] == issuer and claims["iss"] == issuer
    finally:
        emu.process.stop()
