"""The rest of the v2 surface through the official client (both transports) and raw REST:
queue-level httpTarget honoured at dispatch, BufferTask, IAM, logging config, App Engine
tasks, and the test-suite controls."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import google.auth.transport.requests
import pytest
from google.api_core import exceptions
from google.cloud import tasks_v2
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.oauth2 import id_token
from google.protobuf import field_mask_pb2

from tests.emulator.conftest import Emulator, start_emulator
from tests.emulator.receiver import Receiver, Reply
from tests.emulator.test_client_tasks import LATER, at
from tests.support.servers import wait_until

ACCOUNT = "dispatcher@test-project.iam.gserviceaccount.com"
OVERRIDE_ACCOUNT = "queue-level@test-project.iam.gserviceaccount.com"


def rest(emulator: Emulator, method: str, path: str, body: object = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    """One raw REST call; returns (status, JSON answer)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(emulator.endpoint + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def set_target(client, queue: str, target: dict) -> tasks_v2.Queue:  # type: ignore[no-untyped-def, type-arg]
    """Set the queue's httpTarget (mask: the whole group)."""
    return client.update_queue(queue={"name": queue, "http_target": target},
                               update_mask=field_mask_pb2.FieldMask(paths=["http_target"]))


def test_uri_override_always_rewrites_host_port_path_and_query(client, make_queue, receiver: Receiver) -> None:
    queue = make_queue()
    set_target(client, queue, {"uri_override": {
        "scheme": tasks_v2.UriOverride.Scheme.HTTP, "host": "127.0.0.1", "port": receiver.port,
        "path_override": {"path": "/routed"}, "query_override": {"query_params": "via=queue"}}})

    client.create_task(parent=queue, task={"http_request": {"url": "https://example.invalid:9/original?x=1"}})

    assert wait_until(lambda: receiver.received("/routed?via=queue"), timeout=5, what="routed delivery")


def test_uri_override_if_not_exists_keeps_what_the_task_has(client, make_queue, receiver: Receiver) -> None:
    queue = make_queue()
    set_target(client, queue, {"uri_override": {
        "path_override": {"path": "/default-path"}, "query_override": {"query_params": "q=queue"},
        "uri_override_enforce_mode": tasks_v2.UriOverride.UriOverrideEnforceMode.IF_NOT_EXISTS}})

    client.create_task(parent=queue, task={"http_request": {"url": receiver.url("/own-path")}})
    client.create_task(parent=queue, task={"http_request": {"url": receiver.url("/")}})

    assert wait_until(lambda: receiver.received("/own-path?q=queue"), timeout=5, what="own path kept")
    assert wait_until(lambda: receiver.received("/default-path?q=queue"), timeout=5, what="empty path filled")


def test_method_headers_and_oidc_overrides_apply_at_dispatch(client, make_queue, receiver: Receiver, emulator) -> None:
    queue = make_queue()
    client.pause_queue(name=queue)
    client.create_task(parent=queue, task={"http_request": {
        "url": receiver.url("/over"), "http_method": tasks_v2.HttpMethod.POST,
        "headers": {"X-Keep": "task", "x-replace": "task"},
        "oidc_token": {"service_account_email": ACCOUNT, "audience": "task-audience"}}})

    # Changed after the task was created: the override is read when the task is dispatched.
    set_target(client, queue, {
        "http_method": tasks_v2.HttpMethod.PUT,
        "header_overrides": [{"header": {"key": "X-Replace", "value": "queue"}},
                             {"header": {"key": "X-Added", "value": "queue"}}],
        "oidc_token": {"service_account_email": OVERRIDE_ACCOUNT, "audience": receiver.url("/")}})
    client.resume_queue(name=queue)

    request = wait_until(lambda: receiver.received("/over"), timeout=5, what="delivery")[0]
    assert request.method == "PUT"
    assert request.header("X-Keep") == "task" and request.header("X-Replace") == "queue"
    assert request.header("X-Added") == "queue"
    token = request.header("Authorization").split()[1]
    claims = id_token.verify_token(token, google.auth.transport.requests.Request(), audience=receiver.url("/"),
                                   certs_url=emulator.endpoint + "/oauth2/v1/certs")
    assert claims["email"] == OVERRIDE_ACCOUNT


def test_http_target_round_trips_and_masked_sub_fields_update(client, make_queue) -> None:
    queue = make_queue()
    set_target(client, queue, {"uri_override": {"host": "handler.local", "port": 8081},
                               "oidc_token": {"service_account_email": ACCOUNT, "audience": "a"}})

    client.update_queue(queue={"name": queue, "http_target": {"oidc_token": {"audience": "b"}}},
                        update_mask=field_mask_pb2.FieldMask(paths=["http_target.oidc_token.audience"]))

    target = client.get_queue(name=queue).http_target
    assert target.uri_override.host == "handler.local" and target.uri_override.port == 8081
    assert target.oidc_token.service_account_email == ACCOUNT and target.oidc_token.audience == "b"


def test_stackdriver_logging_config_is_kept_and_checked(client, make_queue) -> None:
    queue = make_queue()
    mask = field_mask_pb2.FieldMask(paths=["stackdriver_logging_config.sampling_ratio"])

    client.update_queue(queue={"name": queue, "stackdriver_logging_config": {"sampling_ratio": 0.25}}, update_mask=mask)

    assert client.get_queue(name=queue).stackdriver_logging_config.sampling_ratio == 0.25
    with pytest.raises(exceptions.BadRequest, match="samplingRatio"):
        client.update_queue(queue={"name": queue, "stackdriver_logging_config": {"sampling_ratio": 2}},
                            update_mask=mask)


def test_iam_policy_is_stored_per_queue_with_etag_checks(client, make_queue) -> None:
    queue = make_queue()
    empty = client.get_iam_policy(request=iam_policy_pb2.GetIamPolicyRequest(resource=queue))
    binding = policy_pb2.Binding(role="roles/cloudtasks.enqueuer", members=[f"serviceAccount:{ACCOUNT}"])

    stored = client.set_iam_policy(request=iam_policy_pb2.SetIamPolicyRequest(
        resource=queue, policy=policy_pb2.Policy(bindings=[binding], etag=empty.etag)))

    assert stored.etag != empty.etag
    fetched = client.get_iam_policy(request=iam_policy_pb2.GetIamPolicyRequest(resource=queue))
    assert list(fetched.bindings) == [binding] and fetched.etag == stored.etag
    with pytest.raises((exceptions.Aborted, exceptions.Conflict), match="concurrent policy changes"):
        client.set_iam_policy(request=iam_policy_pb2.SetIamPolicyRequest(
            resource=queue, policy=policy_pb2.Policy(bindings=[], etag=empty.etag)))
    other = make_queue()
    assert not client.get_iam_policy(request=iam_policy_pb2.GetIamPolicyRequest(resource=other)).bindings


def test_iam_rejects_bad_members_and_wildcard_permissions(client, make_queue) -> None:
    queue = make_queue()
    bad = policy_pb2.Binding(role="roles/cloudtasks.enqueuer", members=["someone@example.com"])

    with pytest.raises(exceptions.BadRequest, match=r"members\[0\]"):
        client.set_iam_policy(request=iam_policy_pb2.SetIamPolicyRequest(resource=queue, policy=policy_pb2.Policy(bindings=[bad])))
    granted = client.test_iam_permissions(request=iam_policy_pb2.TestIamPermissionsRequest(
        resource=queue, permissions=["cloudtasks.tasks.create", "cloudtasks.queues.get"]))
    assert list(granted.permissions) == ["cloudtasks.tasks.create", "cloudtasks.queues.get"]
    with pytest.raises(exceptions.BadRequest, match="wildcards"):
        client.test_iam_permissions(request=iam_policy_pb2.TestIamPermissionsRequest(resource=queue, permissions=["cloudtasks.*"]))


def test_buffer_task_uses_the_queue_target(emulator: Emulator, client, make_queue, receiver: Receiver) -> None:
    queue = make_queue()
    set_target(client, queue, {"uri_override": {"scheme": tasks_v2.UriOverride.Scheme.HTTP, "host": "127.0.0.1",
                                                "port": receiver.port, "path_override": {"path": "/buffered"}},
                               "header_overrides": [{"header": {"key": "X-From", "value": "buffer"}}]})
    payload = {"body": {"contentType": "application/json", "data": base64.b64encode(b'{"n": 1}').decode()}}

    status, answer = rest(emulator, "POST", f"/v2/{queue}/tasks/buf-1:buffer", payload)

    assert status == 200 and answer["task"]["name"] == f"{queue}/tasks/buf-1"
    request = wait_until(lambda: receiver.received("/buffered"), timeout=5, what="buffered delivery")[0]
    assert request.body == b'{"n": 1}' and request.header("Content-Type") == "application/json"
    assert request.header("X-From") == "buffer" and request.header("X-CloudTasks-TaskName") == "buf-1"
    status, generated = rest(emulator, "POST", f"/v2/{queue}/tasks:buffer", {})
    assert status == 200 and generated["task"]["name"].startswith(f"{queue}/tasks/")
    assert rest(emulator, "POST", f"/v2/{queue}/tasks/buf-1:buffer", payload)[0] == 409


def test_buffer_task_needs_a_queue_target(emulator: Emulator, make_queue) -> None:
    status, answer = rest(emulator, "POST", f"/v2/{make_queue()}/tasks:buffer", {})

    assert status == 400 and answer["error"]["status"] == "FAILED_PRECONDITION"
    assert "httpTarget.uriOverride" in answer["error"]["message"]


@pytest.fixture
def app_engine(tmp_path: Path, receiver: Receiver) -> Iterator[Emulator]:
    """An emulator whose App Engine host is the receiver."""
    emu = start_emulator(tmp_path, extra=["--app-engine-host", receiver.url("")])
    try:
        yield emu
    finally:
        emu.process.stop()


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_app_engine_task_goes_to_the_app_engine_host(app_engine: Emulator, receiver: Receiver, transport: str) -> None:
    client = app_engine.client(transport)
    parent = "projects/test-project/locations/us-central1"
    queue = client.create_queue(parent=parent, queue={"name": f"{parent}/queues/gae-{transport}"}).name

    task = client.create_task(parent=queue, task={"app_engine_http_request": {
        "relative_uri": "/tasks/work?x=1", "body": b"payload", "app_engine_routing": {"service": "worker"}}})

    assert task.app_engine_http_request.app_engine_routing.service == "worker"
    request = wait_until(lambda: receiver.received("/tasks/work?x=1"), timeout=5, what="App Engine delivery")[0]
    assert request.body == b"payload" and request.header("Content-Type") == "application/octet-stream"
    assert request.header("X-AppEngine-QueueName") == f"gae-{transport}"
    assert request.header("X-AppEngine-TaskName") == task.name.rsplit("/", 1)[1]
    assert request.header("X-AppEngine-TaskRetryCount") == "0"


def test_reset_drops_tasks_and_keeps_queues(emulator: Emulator, client, make_queue) -> None:
    queue = make_queue()
    name = f"{queue}/tasks/before-reset"
    client.create_task(parent=queue, task={"name": name, "http_request": {"url": "http://127.0.0.1:9/"},
                                           "schedule_time": at(LATER)})

    assert rest(emulator, "POST", "/_emulator/reset")[0] == 200

    assert list(client.list_tasks(parent=queue)) == []
    # Tombstones went too: the name is free again.
    client.create_task(parent=queue, task={"name": name, "http_request": {"url": "http://127.0.0.1:9/"},
                                           "schedule_time": at(LATER)})


def test_reset_with_queues_drops_queues_and_their_recreate_window(tmp_path: Path) -> None:
    emu = start_emulator(tmp_path)
    try:
        client = emu.client("grpc")
        parent = "projects/test-project/locations/us-central1"
        name = client.create_queue(parent=parent, queue={"name": f"{parent}/queues/reset-me"}).name
        client.delete_queue(name=name)

        assert rest(emu, "POST", "/_emulator/reset?queues=true") == (200, {"reset": True, "queues": True})

        assert list(client.list_queues(parent=parent)) == []
        client.create_queue(parent=parent, queue={"name": name})
        assert rest(emu, "POST", "/_emulator/reset?queues=maybe")[0] == 400
    finally:
        emu.process.stop()


def test_drain_waits_for_due_and_in_flight_tasks(emulator: Emulator, client, make_queue, receiver: Receiver) -> None:
    queue = make_queue()
    receiver.script("/slow", [Reply(200, delay=1.0)])
    client.create_task(parent=queue, task={"http_request": {"url": receiver.url("/slow")}})
    client.create_task(parent=queue, task={"http_request": {"url": receiver.url("/later")}, "schedule_time": at(LATER)})
    wait_until(lambda: receiver.received("/slow"), timeout=5, what="slow delivery started")

    status, answer = rest(emulator, "POST", "/_emulator/drain?timeout=0.1")
    assert status == 408 and "in flight" in answer["error"]["message"]

    assert rest(emulator, "POST", "/_emulator/drain?timeout=10") == (200, {"drained": True})
    assert receiver.received("/later") == []
    assert rest(emulator, "POST", "/_emulator/drain?timeout=-1")[0] == 400


def test_buffer_task_over_grpc(emulator: Emulator, client, make_queue, receiver: Receiver) -> None:
    import grpc
    from google.api import httpbody_pb2

    from ordertasks.infra.emulator.buffer_proto import BufferTaskRequest, BufferTaskResponse

    queue = make_queue()
    set_target(client, queue, {"uri_override": {"scheme": tasks_v2.UriOverride.Scheme.HTTP, "host": "127.0.0.1",
                                                "port": receiver.port, "path_override": {"path": "/grpc-buffer"}}})
    with grpc.insecure_channel(f"127.0.0.1:{emulator.port}") as channel:
        buffer = channel.unary_unary("/google.cloud.tasks.v2.CloudTasks/BufferTask",
                                     request_serializer=BufferTaskRequest.SerializeToString,
                                     response_deserializer=BufferTaskResponse.FromString)
        named = buffer(BufferTaskRequest(queue=queue, task_id="gb-1", body=httpbody_pb2.HttpBody(
            content_type="text/plain", data=b"hello")), timeout=10)
        generated = buffer(BufferTaskRequest(queue=queue), timeout=10)

    assert named.task.name == f"{queue}/tasks/gb-1"
    assert generated.task.name.startswith(f"{queue}/tasks/") and generated.task.name != named.task.name
    request = wait_until(lambda: [r for r in receiver.received("/grpc-buffer") if r.body == b"hello"], timeout=5,
                         what="buffered delivery")[0]
    assert request.header("Content-Type") == "text/plain"
