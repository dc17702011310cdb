"""The gRPC transport's answer conversion (``infra/emulator/wire_proto.py``) gives exactly what
protobuf's own ``json_format.ParseDict`` gives, for the answers the service really writes.

The answers come from a real in-process service (SQLite store, no dispatcher needed: the
queue is paused) driven through ``api.invoke``, the entry point both transports use, with
every shape the surface has: queues with rate limits, retry config and an HTTP target, tasks
with headers, bodies, OIDC and OAuth tokens, App Engine routing, their own retry config,
schedule times with microseconds, both views, lists, IAM, CMEK, locations and the batch
operations (``Any``: the fallback to ``ParseDict``).  Timestamps and durations are also
compared over generated values.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from google.protobuf import duration_pb2, json_format, timestamp_pb2
import pytest
from hypothesis import given, strategies as st

from ordertasks.infra.emulator import api, store as db, wire_proto
from ordertasks.infra.emulator.grpc_service import LOCATIONS_RULES, TASKS_RULES
from ordertasks.infra.emulator.model import QueueState
from ordertasks.infra.emulator.service import TasksService
from ordertasks.infra.emulator.wire_scalars import format_duration, format_timestamp

LOCATION = "projects/wire-proto/locations/here"
QUEUE = f"{LOCATION}/queues/shapes"
RULES = {**TASKS_RULES, **LOCATIONS_RULES}
HTTP_TASK = {"httpRequest": {"url": "https://example.test/hook?x=1", "httpMethod": "PUT",
                             "headers": {"X-Trace": "abc", "Content-Type": "application/json"},
                             "body": "eyJraW5kIjoibm9vcCJ9", "oidcToken": {"serviceAccountEmail": "a@b.iam",
                                                                             "audience": "https://example.test/"}},
             "scheduleTime": format_timestamp(time.time() + 86400.123456), "dispatchDeadline": "45.5s"}
CALLS: list[tuple[str, str, str, dict[str, str], Any]] = [
    ("CreateQueue", "POST", f"{LOCATION}/queues", {}, {
        "name": QUEUE, "rateLimits": {"maxDispatchesPerSecond": 12.5, "maxConcurrentDispatches": 3},
        "retryConfig": {"maxAttempts": 7, "minBackoff": "0.250s", "maxBackoff": "90s", "maxDoublings": 2,
                        "maxRetryDuration": "3600s"},
        "httpTarget": {"uriOverride": {"host": "example.test", "pathOverride": {"path": "/x"}},
                       "headerOverrides": [{"header": {"key": "X-A", "value": "1"}}]}}),
    ("PauseQueue", "POST", f"{QUEUE}:pause", {}, {}),
    ("GetQueue", "GET", QUEUE, {}, None),
    ("ListQueues", "GET", f"{LOCATION}/queues", {}, None),
    ("CreateTask", "POST", f"{QUEUE}/tasks", {}, {"task": {**HTTP_TASK, "name": f"{QUEUE}/tasks/http-1"},
                                                   "responseView": "FULL"}),
    ("CreateTask", "POST", f"{QUEUE}/tasks", {}, {"task": {"httpRequest": {
        "url": "http://127.0.0.1:9/", "oauthToken": {"serviceAccountEmail": "a@b.iam", "scope": "s"}}}}),
    ("CreateTask", "POST", f"{QUEUE}/tasks", {}, {"task": {"appEngineHttpRequest": {
        "relativeUri": "/tasks/x", "appEngineRouting": {"service": "worker", "version": "v2"},
        "headers": {"X-B": "2"}, "body": "AAEC"}}}),
    ("CreateTask", "POST", f"{QUEUE}/tasks", {}, {"task": {"httpRequest": {"url": "http://127.0.0.1:9/"},
                                                           "retryConfig": {"maxAttempts": 1}}}),
    ("GetTask", "GET", f"{QUEUE}/tasks/http-1", {"responseView": "FULL"}, None),
    ("GetTask", "GET", f"{QUEUE}/tasks/http-1", {}, None),
    ("ListTasks", "GET", f"{QUEUE}/tasks", {"responseView": "FULL"}, None),
    ("ListTasks", "GET", f"{QUEUE}/tasks", {"pageSize": "1"}, None),
    ("GetIamPolicy", "POST", f"{QUEUE}:getIamPolicy", {}, {}),
    ("SetIamPolicy", "POST", f"{QUEUE}:setIamPolicy", {}, {"policy": {"bindings": [
        {"role": "roles/cloudtasks.enqueuer", "members": ["user:a@example.test"]}]}}),
    ("TestIamPermissions", "POST", f"{QUEUE}:testIamPermissions", {}, {"permissions": ["cloudtasks.tasks.create"]}),
    ("GetCmekConfig", "GET", f"{LOCATION}/cmekConfig", {}, None),
    ("BatchCreateTasks", "POST", f"{QUEUE}/tasks:batchCreate", {}, {"requests": [
        {"parent": QUEUE, "task": {"httpRequest": {"url": "http://127.0.0.1:9/"}}}]}),
    ("ListLocations", "GET", "projects/wire-proto/locations", {}, None),
    ("GetLocation", "GET", LOCATION, {}, None),
]


async def _answers(path: Path) -> list[tuple[str, dict[str, Any]]]:
    store = db.Store(path)
    service = TasksService(store, time.time)
    service.restore(store.load(time.time()))
    store.start(asyncio.get_running_loop())
    answers = []
    try:
        for rpc, method, url, query, body in CALLS:
            answers.append((rpc, await api.invoke(service, method, url, query, body)))
        assert service.queue(QUEUE).state == QueueState.PAUSED
    finally:
        store.close()
    return answers


def test_every_answer_converts_as_parse_dict_converts_it(tmp_path: Path) -> None:
    answers = asyncio.run(_answers(tmp_path / "tasks.db"))

    assert len(answers) == len(CALLS)
    for rpc, answer in answers:
        response = RULES[rpc].response
        expected = json_format.ParseDict(answer, response(), ignore_unknown_fields=True)
        assert wire_proto.parse_answer(answer, response()) == expected, (rpc, answer)


def test_the_common_answers_take_the_direct_path(tmp_path: Path) -> None:
    """Tasks and queues never fall back to ParseDict (the point of the module)."""
    answers = dict(asyncio.run(_answers(tmp_path / "tasks.db")))
    for rpc in ("CreateTask", "GetTask", "GetQueue", "ListTasks", "ListQueues"):
        wire_proto._fill(RULES[rpc].response(), answers[rpc])  # raises where ParseDict would be needed


WELL_KNOWN = {  # the JSON text the service writes, protobuf's own reader, ours, the largest value
    "timestamp": (format_timestamp, timestamp_pb2.Timestamp, wire_proto._timestamp, 253402300799),
    "duration": (format_duration, duration_pb2.Duration, wire_proto._duration, 315576000000),
}


@pytest.mark.parametrize("kind", sorted(WELL_KNOWN))
@given(fraction=st.floats(min_value=0, max_value=1, allow_nan=False))
def test_timestamps_and_durations_convert_as_protobuf_reads_them(kind: str, fraction: float) -> None:
    write, message, read, largest = WELL_KNOWN[kind]
    text = write(fraction * largest)
    expected = message()
    expected.FromJsonString(text)
    assert read(text) == (expected.seconds, expected.nanos)


def test_anything_else_falls_back_to_parse_dict() -> None:
    """A timestamp with an offset, nine fraction digits or a negative duration: ParseDict decides."""
    from google.cloud import tasks_v2
    answer = {"name": f"{QUEUE}/tasks/t", "scheduleTime": "2030-01-02T03:04:05.123456789+01:00",
              "dispatchDeadline": "-1.5s"}
    response = tasks_v2.Task.pb()
    assert wire_proto.parse_answer(answer, response()) == json_format.ParseDict(answer, response())


def _requests() -> list[Any]:
    from google.cloud import tasks_v2
    from google.iam.v1 import iam_policy_pb2, policy_pb2
    from google.protobuf import field_mask_pb2
    task = tasks_v2.Task(name=f"{QUEUE}/tasks/t", schedule_time=timestamp_pb2.Timestamp(seconds=1_900_000_000, nanos=5),
                         dispatch_deadline=duration_pb2.Duration(seconds=45, nanos=500_000_000),
                         http_request=tasks_v2.HttpRequest(url="https://example.test/", http_method="PUT",
                                                           headers={"X-A": "1", "Content-Type": "text/plain"},
                                                           body=b"\x00\xffbody",
                                                           oidc_token=tasks_v2.OidcToken(service_account_email="a@b",
                                                                                         audience="aud")))
    queue = tasks_v2.Queue(name=QUEUE, rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=12.5,
                                                                        max_concurrent_dispatches=3),
                           retry_config=tasks_v2.RetryConfig(max_attempts=7, min_backoff=duration_pb2.Duration(seconds=1)))
    pb = [tasks_v2.CreateTaskRequest(parent=QUEUE, task=task, response_view="FULL"),
          tasks_v2.CreateTaskRequest(parent=QUEUE, task=tasks_v2.Task(app_engine_http_request=tasks_v2.AppEngineHttpRequest(
              relative_uri="/x", app_engine_routing=tasks_v2.AppEngineRouting(service="s")))),
          tasks_v2.GetTaskRequest(name=f"{QUEUE}/tasks/t", response_view="BASIC"),
          tasks_v2.ListTasksRequest(parent=QUEUE, page_size=3, page_token="abc"),
          tasks_v2.CreateQueueRequest(parent=LOCATION, queue=queue),
          tasks_v2.UpdateQueueRequest(queue=queue, update_mask=field_mask_pb2.FieldMask(paths=["rate_limits"])),
          tasks_v2.BatchCreateTasksRequest(parent=QUEUE, requests=[tasks_v2.CreateTaskRequest(parent=QUEUE, task=task)]),
          tasks_v2.DeleteTaskRequest(name=f"{QUEUE}/tasks/t")]
    return [m._pb for m in pb] + [
        iam_policy_pb2.SetIamPolicyRequest(resource=QUEUE, policy=policy_pb2.Policy(
            version=3, etag=b"\x01\x02", bindings=[policy_pb2.Binding(role="r", members=["user:a@b"])])),
        iam_policy_pb2.TestIamPermissionsRequest(resource=QUEUE, permissions=["cloudtasks.tasks.create"])]


def test_every_request_converts_as_message_to_dict_converts_it() -> None:
    for request in _requests():
        assert wire_proto.request_json(request) == json_format.MessageToDict(request), type(request).__name__


def test_the_common_requests_take_the_direct_path() -> None:
    """CreateTask, GetTask and ListTasks never fall back to MessageToDict."""
    for request in _requests()[:4]:
        wire_proto._to_json(request)  # raises where MessageToDict would be needed
