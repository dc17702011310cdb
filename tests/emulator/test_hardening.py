"""Hostile and malformed input: every bad field is a 400 INVALID_ARGUMENT naming it (never a
5xx, over REST or gRPC), headers that cannot go on the wire are refused at create, and a
web page cannot drive the emulator (Host and Origin checks)."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.emulator.conftest import PARENT, Emulator
from tests.emulator.receiver import Receiver
from tests.support.servers import wait_until

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SERVER_ERRORS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS,
                 grpc.StatusCode.UNAVAILABLE}


def new_queue(emulator: Emulator) -> str:
    """A fresh queue, created over REST."""
    name = f"{PARENT}/queues/h-{uuid.uuid4().hex[:10]}"
    resp = requests.post(f"{emulator.endpoint}/v2/{PARENT}/queues", json={"name": name}, timeout=10)
    assert resp.status_code == 200, resp.text
    return name


def paused_queue(emulator: Emulator, queue_id: str) -> str:
    """A paused queue (created if needed): fuzzed tasks must never be dispatched anywhere."""
    name = f"{PARENT}/queues/{queue_id}"
    requests.post(f"{emulator.endpoint}/v2/{PARENT}/queues", json={"name": name}, timeout=10)
    assert requests.post(f"{emulator.endpoint}/v2/{name}:pause", timeout=10).status_code == 200
    return name


def post_task(emulator: Emulator, queue: str, task: object, **kwargs) -> requests.Response:  # type: ignore[no-untyped-def]
    """POST a create-task body."""
    return requests.post(f"{emulator.endpoint}/v2/{queue}/tasks", json={"task": task}, timeout=10, **kwargs)


def error_of(resp: requests.Response) -> dict:  # type: ignore[type-arg]
    """The google.rpc.Status of an error answer."""
    return resp.json()["error"]  # type: ignore[no-any-return]


def as_json(value: object) -> bytes:
    """JSON text, NaN and Infinity included (what a careless client may send)."""
    return json.dumps(value).encode()


# -- the cases from the bug report -------------------------------------------------------

@pytest.mark.parametrize("page_size", ["²", "9" * 5000, "-1", "1.5", "abc"])
def test_bad_page_size_is_invalid_argument(emulator: Emulator, page_size: str) -> None:
    resp = requests.get(f"{emulator.endpoint}/v2/{PARENT}/queues", params={"pageSize": page_size}, timeout=10)

    assert resp.status_code == 400 and "pageSize" in error_of(resp)["message"]


@pytest.mark.parametrize("field, value", [
    ("dispatchDeadline", "9" * 5000 + "s"),
    ("scheduleTime", "99999-01-01T00:00:00Z"),
    ("firstAttempt", {"responseStatus": {"code": "abc"}}),
    ("dispatchCount", "9" * 5000),
])
def test_bad_task_fields_are_invalid_argument(emulator: Emulator, field: str, value: object) -> None:
    resp = post_task(emulator, new_queue(emulator), {"httpRequest": {"url": "http://127.0.0.1:9/"}, field: value})

    assert resp.status_code == 400 and field in error_of(resp)["message"]


@pytest.mark.parametrize("field, value", [("minBackoff", "1" + "0" * 400 + "s"), ("minBackoff", "1e400s"),
                                          ("maxAttempts", 10**30), ("maxDoublings", "nan")])
def test_bad_retry_fields_are_invalid_argument(emulator: Emulator, field: str, value: object) -> None:
    name = f"{PARENT}/queues/r-{uuid.uuid4().hex[:10]}"

    resp = requests.post(f"{emulator.endpoint}/v2/{PARENT}/queues", json={"name": name, "retryConfig": {field: value}},
                         timeout=10)

    assert resp.status_code == 400 and f"retryConfig.{field}" in error_of(resp)["message"]


@pytest.mark.parametrize("name, value", [
    ("X-Evil", "a\r\nInjected: 1"), ("X-Evil", "line\nbreak"), ("X-Evil", "nul\0byte"),
    ("X Space", "v"), ("X-Colon:", "v"), ("", "v"), ("X-Ünicode", "v"),
])
def test_headers_that_cannot_go_on_the_wire_are_refused_at_create(emulator: Emulator, name: str, value: str) -> None:
    resp = post_task(emulator, new_queue(emulator), {"httpRequest": {"url": "http://127.0.0.1:9/", "headers": {name: value}}})

    assert resp.status_code == 400 and "header" in error_of(resp)["message"]


def test_queue_header_overrides_are_checked_too(emulator: Emulator) -> None:
    queue = new_queue(emulator)
    target = {"httpTarget": {"headerOverrides": [{"header": {"key": "X-A", "value": "1\r\n2"}}]}}

    resp = requests.patch(f"{emulator.endpoint}/v2/{queue}", params={"updateMask": "httpTarget"}, json=target, timeout=10)

    assert resp.status_code == 400 and "httpTarget.headerOverrides[0].header" in error_of(resp)["message"]


def test_an_unsendable_url_is_refused_and_a_send_failure_is_retried_not_stuck(
        emulator: Emulator, client, make_queue, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    bad = post_task(emulator, new_queue(emulator), {"httpRequest": {"url": "http://127.0.0.1:9/a b"}})
    assert bad.status_code == 400 and "url" in error_of(bad)["message"]

    queue = make_queue(attempts=2, min_backoff=0.05, max_backoff=0.05)
    name = client.create_task(parent=queue, task={"http_request": {"url": "http://127.0.0.1:1/closed"}}).name
    # Both attempts fail (nothing listens on port 1) and the task is given up: never stuck in flight.
    wait_until(lambda: not [t for t in client.list_tasks(parent=queue) if t.name == name], timeout=10,
               what="task given up after its attempts")


# -- browsers ---------------------------------------------------------------------------

def test_foreign_host_is_refused(emulator: Emulator) -> None:
    resp = requests.get(f"{emulator.endpoint}/v2/{PARENT}/queues", headers={"Host": "evil.example"}, timeout=10)

    assert resp.status_code == 403 and "evil.example" in error_of(resp)["message"]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "127.0.0.2"])
def test_loopback_hosts_are_accepted(emulator: Emulator, host: str) -> None:
    resp = requests.get(f"{emulator.endpoint}/v2/{PARENT}/queues", headers={"Host": f"{host}:{emulator.port}"},
                        timeout=10)

    assert resp.status_code == 200


def test_cross_origin_simple_post_creates_nothing(emulator: Emulator) -> None:
    queue = new_queue(emulator)
    body = json.dumps({"task": {"name": f"{queue}/tasks/csrf", "httpRequest": {"url": "http://127.0.0.1:9/",
                                "oidcToken": {"serviceAccountEmail": "x@p.iam.gserviceaccount.com"}}}})

    resp = requests.post(f"{emulator.endpoint}/v2/{queue}/tasks", data=body, timeout=10,
                         headers={"Content-Type": "text/plain", "Origin": "http://evil.example"})

    assert resp.status_code == 403 and "cross-origin" in error_of(resp)["message"]
    assert requests.get(f"{emulator.endpoint}/v2/{queue}/tasks/csrf", timeout=10).status_code == 404


def test_same_origin_and_controls_follow_the_same_rule(emulator: Emulator) -> None:
    same = requests.get(f"{emulator.endpoint}/v2/{PARENT}/queues", timeout=10,
                        headers={"Origin": f"http://127.0.0.1:{emulator.port}"})
    cross = requests.post(f"{emulator.endpoint}/_emulator/reset", timeout=10, headers={"Origin": "http://evil.example"})

    assert same.status_code == 200 and cross.status_code == 403


# -- fuzzing ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)
task_fields = st.fixed_dictionaries({}, optional={
    "name": json_values | st.text(max_size=40),
    "httpRequest": st.fixed_dictionaries({}, optional={
        "url": json_values | st.sampled_from(["http://127.0.0.1:9/", "https://x", "http://[::1", "http://h:99999/"]),
        "httpMethod": json_values | st.sampled_from(["GET", "PUT", 99, "-1"]),
        "headers": st.dictionaries(st.text(max_size=10), json_values | st.text(max_size=10), max_size=3),
        "body": json_values | st.sampled_from(["aGk=", "!!", "aGk"]),
        "oidcToken": json_values, "oauthToken": json_values}),
    "appEngineHttpRequest": json_values,
    "scheduleTime": json_values | st.sampled_from(["2030-01-01T00:00:00Z", "0000-00-00T00:00:00Z"]),
    "dispatchDeadline": json_values | st.sampled_from(["30s", "-5s", "1e9s", "0.5s"]),
    "firstAttempt": json_values, "lastAttempt": json_values,
    "dispatchCount": json_values, "responseCount": json_values})
queue_fields = st.fixed_dictionaries({}, optional={
    "rateLimits": st.dictionaries(st.sampled_from(["maxDispatchesPerSecond", "maxBurstSize", "maxConcurrentDispatches"]),
                                  json_values, max_size=3),
    "retryConfig": st.dictionaries(st.sampled_from(["maxAttempts", "minBackoff", "maxBackoff", "maxDoublings",
                                                    "maxRetryDuration"]), json_values, max_size=3),
    "httpTarget": json_values | st.fixed_dictionaries({}, optional={
        "uriOverride": st.dictionaries(st.sampled_from(["host", "port", "scheme", "pathOverride", "queryOverride",
                                                        "uriOverrideEnforceMode"]), json_values, max_size=4),
        "headerOverrides": json_values, "httpMethod": json_values, "oidcToken": json_values}),
    "stackdriverLoggingConfig": json_values, "appEngineRoutingOverride": json_values, "state": json_values})


@FUZZ
@given(task=task_fields, view=json_values)
def test_fuzz_rest_create_task_never_5xx(emulator: Emulator, task: dict, view: object) -> None:  # type: ignore[type-arg]
    queue = paused_queue(emulator, "fuzz-tasks")

    resp = requests.post(f"{emulator.endpoint}/v2/{queue}/tasks", data=as_json({"task": task, "responseView": view}),
                         timeout=10)

    assert resp.status_code < 500, resp.text
    if resp.status_code == 400:
        assert error_of(resp)["status"] in ("INVALID_ARGUMENT", "FAILED_PRECONDITION") and error_of(resp)["message"]


@FUZZ
@given(queue=queue_fields, mask=st.lists(st.sampled_from(["rateLimits", "retryConfig.minBackoff", "httpTarget",
                                                          "httpTarget.uriOverride", "stackdriverLoggingConfig",
                                                          "appEngineRoutingOverride", "bogus", ""]), max_size=3))
def test_fuzz_rest_patch_queue_never_5xx(emulator: Emulator, queue: dict, mask: list[str]) -> None:  # type: ignore[type-arg]
    name = f"{PARENT}/queues/fuzz-queue"

    resp = requests.patch(f"{emulator.endpoint}/v2/{name}", params={"updateMask": ",".join(mask)},
                          data=as_json({**queue, "name": name}), timeout=10)

    assert resp.status_code < 500, resp.text


@FUZZ
@given(path=st.text(max_size=60), query=st.dictionaries(st.sampled_from(["pageSize", "pageToken", "filter",
                                                                         "responseView", "updateMask", "alt"]),
                                                        st.text(max_size=30), max_size=3),
       method=st.sampled_from(["GET", "POST", "PATCH", "DELETE"]), body=st.binary(max_size=60))
def test_fuzz_rest_paths_and_queries_never_5xx(emulator: Emulator, path: str, query: dict, method: str,  # type: ignore[type-arg]
                                               body: bytes) -> None:
    url = f"{emulator.endpoint}/v2/{PARENT}/{requests.utils.quote(path)}"

    resp = requests.request(method, url, params=query, data=body, timeout=10)

    assert resp.status_code < 500, resp.text


GRPC_METHODS = ["CreateTask", "CreateQueue", "UpdateQueue", "GetTask", "ListTasks", "ListQueues", "RunTask",
                "SetIamPolicy", "TestIamPermissions", "PurgeQueue", "BufferTask"]


@FUZZ
@given(method=st.sampled_from(GRPC_METHODS), payload=st.binary(max_size=200))
def test_fuzz_grpc_raw_bytes_never_server_error(emulator: Emulator, method: str, payload: bytes) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{emulator.port}") as channel:
        call = channel.unary_unary(f"/google.cloud.tasks.v2.CloudTasks/{method}")
        try:
            call(payload, timeout=10)
        except grpc.RpcError as err:
            assert err.code() not in SERVER_ERRORS, f"{method}: {err.code()} {err.details()}"


@FUZZ
@given(task=task_fields)
def test_fuzz_grpc_create_task_never_server_error(emulator: Emulator, task: dict) -> None:  # type: ignore[type-arg]
    from google.cloud import tasks_v2
    from google.protobuf import json_format

    queue = paused_queue(emulator, "fuzz-grpc")
    message = tasks_v2.CreateTaskRequest.pb()(parent=queue)
    try:
        json_format.ParseDict({"task": task}, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, AttributeError, RecursionError):
        message = tasks_v2.CreateTaskRequest.pb()(parent=queue)  # not expressible as a message: send the bare request
    with grpc.insecure_channel(f"127.0.0.1:{emulator.port}") as channel:
        call = channel.unary_unary("/google.cloud.tasks.v2.CloudTasks/CreateTask")
        try:
            call(message.SerializeToString(), timeout=10)
        except grpc.RpcError as err:
            assert err.code() not in SERVER_ERRORS, f"{err.code()} {err.details()}"
