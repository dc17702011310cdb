"""Dispatch behaviour observed at a real HTTP target: headers, schedule, retries, limits."""

from __future__ import annotations

import base64
import time

from google.api_core import exceptions
from google.cloud import tasks_v2

from tests.emulator.receiver import Receiver, Reply
from tests.emulator.test_client_tasks import at
from tests.support.servers import wait_until


def gone(client, name: str) -> bool:  # type: ignore[no-untyped-def]
    """True once the task no longer exists."""
    try:
        client.get_task(name=name)
        return False
    except exceptions.NotFound:
        return True


def test_request_carries_method_headers_body_and_cloud_tasks_headers(client, make_queue, receiver: Receiver) -> None:
    queue = make_queue()
    name = f"{queue}/tasks/hdr-1"
    client.create_task(parent=queue, task={"name": name, "http_request": {
        "url": receiver.url("/h?x=1"), "http_method": tasks_v2.HttpMethod.PUT,
        "headers": {"X-Custom": "v1"}, "body": b'{"k": "v"}'}})

    request = wait_until(lambda: receiver.received("/h?x=1"), timeout=5, what="delivery")[0]

    assert request.method == "PUT"
    assert request.body == b'{"k": "v"}'
    assert request.headers["X-Custom"] == "v1"
    assert request.headers["User-Agent"] == "Google-Cloud-Tasks"
    assert request.headers["X-CloudTasks-QueueName"] == queue.rsplit("/", 1)[1]
    assert request.headers["X-CloudTasks-TaskName"] == "hdr-1"
    assert request.headers["X-CloudTasks-TaskRetryCount"] == "0"
    assert request.headers["X-CloudTasks-TaskExecutionCount"] == "0"
    assert abs(float(request.headers["X-CloudTasks-TaskETA"]) - request.at) < 1.0
    assert request.header("X-CloudTasks-TaskPreviousResponse") is None
    assert request.header("Content-Type") is None  # HTTP tasks get no default Content-Type
    wait_until(lambda: gone(client, name), timeout=5, what="completed task removed")


def test_generated_task_id_is_sent_as_task_name(client, make_queue, receiver: Receiver) -> None:
    queue = make_queue()
    created = client.create_task(parent=queue, task={"http_request": {"url": receiver.url("/gen")}})

    request = wait_until(lambda: receiver.received("/gen"), timeout=5, what="delivery")[0]

    assert request.headers["X-CloudTasks-TaskName"] == created.name.rsplit("/", 1)[1]


def test_scheduled_task_waits_for_its_time(client, make_queue, receiver: Receiver) -> None:
    queue = make_queue()
    eta = at(1.0)
    client.create_task(parent=queue, task={"http_request": {"url": receiver.url("/later")}, "schedule_time": eta})

    request = wait_until(lambda: receiver.received("/later"), timeout=5, what="scheduled delivery")[0]

    due = eta.ToNanoseconds() / 1e9
    assert request.at >= due - 0.005, "delivered before scheduleTime"
    assert request.at - due < 0.2, f"delivered {request.at - due:.3f}s late"
    assert abs(float(request.headers["X-CloudTasks-TaskETA"]) - due) < 1e-3


def test_retry_and_execution_counts_across_failures(client, make_queue, receiver: Receiver) -> None:
    queue = make_queue(min_backoff=0.05, max_backoff=0.05)
    receiver.script("/flaky", [Reply(503), Reply(404), Reply(503), Reply(200)])
    name = client.create_task(parent=queue, task={"http_request": {"url": receiver.url("/flaky")}}).name

    requests = wait_until(lambda: len(receiver.received("/flaky")) == 4 and receiver.received("/flaky"),
                          timeout=10, what="four attempts")

    headers = [r.headers for r in requests]
    assert [h["X-CloudTasks-TaskRetryCount"] for h in headers] == ["0", "1", "2", "3"]
    # Responses received, not counting 5xx: only the 404 counts.
    assert [h["X-CloudTasks-TaskExecutionCount"] for h in headers] == ["0", "0", "1", "1"]
    assert [h.get("X-CloudTasks-TaskPreviousResponse") for h in headers] == [None, "503", "404", "503"]
    assert "X-CloudTasks-TaskRetryReason" not in headers[0]
    assert all("X-CloudTasks-TaskRetryReason" in h for h in headers[1:])
    wait_until(lambda: gone(client, name), timeout=5, what="completed task removed")


def test_task_shows_attempts_while_retrying(client, make_queue, receiver: Receiver) -> None:
    queue = make_queue(min_backoff=30, max_backoff=30)
    receiver.script("/fails", [Reply(500)])
    name = client.create_task(parent=queue, task={"http_request": {"url": receiver.url("/fails")}}).name
    wait_until(lambda: receiver.received("/fails"), timeout=5, what="first attempt")

    task = wait_until(lambda: (t := client.get_task(name=name)).response_count == 1 and t, timeout=5, what="response recorded")

    assert task.dispatch_count == 1
    assert task.first_attempt.dispatch_time.timestamp() > 0
    assert task.last_attempt.response_status.code == 13  # INTERNAL for HTTP 500
    assert task.schedule_time.timestamp() > time.time() + 20  # next attempt after min backoff
    client.delete_task(name=name)


def test_backoff_doubles_then_grows_linearly_capped(client, make_queue, receiver: Receiver) -> None:
    queue = make_queue(min_backoff=0.1, max_backoff=0.4, doublings=1, attempts=5)
    receiver.script("/backoff", [Reply(500)])
    name = client.create_task(parent=queue, task={"http_request": {"url": receiver.url("/backoff")}}).name

    requests = wait_until(lambda: len(receiver.received("/backoff")) >= 5 and receiver.received("/backoff"),
                          timeout=10, what="five attempts")

    gaps = [b.at - a.at for a, b in zip(requests, requests[1:])]
    for gap, expected in zip(gaps, [0.1, 0.2, 0.4, 0.4]):
        assert expected - 0.01 <= gap <= expected + 0.1, f"gaps {gaps}"
    # maxAttempts (5) reached: the task is deleted and not tried again.
    wait_until(lambda: gone(client, name), timeout=5, what="task deleted after maxAttempts")
    assert len(receiver.received("/backoff")) == 5  # a deleted task is never tried again


def test_retry_after_on_503_is_honoured(client, make_queue, receiver: Receiver) -> None:
    queue = make_queue(min_backoff=0.05, max_backoff=0.05)
    receiver.script("/busy", [Reply(503, {"Retry-After": "1"}), Reply(200)])
    client.create_task(parent=queue, task={"http_request": {"url": receiver.url("/busy")}})

    first, second = wait_until(lambda: len(receiver.received("/busy")) == 2 and receiver.received("/busy"),
                               timeout=5, what="retry after Retry-After")

    assert second.at - first.at >= 0.95


def test_dispatch_deadline_timeout_is_a_failure(client, make_queue, receiver: Receiver) -> None:
    from google.protobuf import duration_pb2

    queue = make_queue(min_backoff=0.05, max_backoff=0.05)
    receiver.script("/slow", [Reply(200, delay=20), Reply(200)])
    client.create_task(parent=queue, task={"http_request": {"url": receiver.url("/slow")},
                                           "dispatch_deadline": duration_pb2.Duration(seconds=15)})

    first, second = wait_until(lambda: len(receiver.received("/slow")) == 2 and receiver.received("/slow"),
                               timeout=20, what="retry after the deadline")

    gap = second.at - first.at
    assert 14.9 <= gap <= 16.5, f"retried {gap:.3f}s after the first attempt (deadline 15s, backoff 0.05s)"
    assert second.headers["X-CloudTasks-TaskRetryCount"] == "1"
    assert second.headers["X-CloudTasks-TaskRetryReason"].startswith("DEADLINE_EXCEEDED")


def test_rate_limit_spaces_dispatches(client, make_queue, receiver: Receiver) -> None:
    queue = make_queue(rate=20, burst=1)
    client.pause_queue(name=queue)
    for i in range(40):
        client.create_task(parent=queue, task={"http_request": {"url": receiver.url("/rate")}})
    client.resume_queue(name=queue)

    requests = wait_until(lambda: len(receiver.received("/rate")) == 40 and receiver.received("/rate"),
                          timeout=10, what="40 deliveries")

    span = requests[-1].at - requests[0].at
    assert 1.8 <= span <= 2.3, f"40 tasks at 20/s took {span:.2f}s"


def test_concurrency_limit_caps_requests_in_flight(client, make_queue, receiver: Receiver) -> None:
    queue = make_queue(concurrent=3)
    receiver.script("/slow-ok", [Reply(200, delay=0.3)])
    for _ in range(12):
        client.create_task(parent=queue, task={"http_request": {"url": receiver.url("/slow-ok")}})

    wait_until(lambda: len(receiver.received("/slow-ok")) == 12, timeout=10, what="12 deliveries")

    assert receiver.max_in_flight == 3


def test_queues_dispatch_independently(client, make_queue, receiver: Receiver) -> None:
    """A queue stuck on a slow target does not delay another queue."""
    slow = make_queue(concurrent=1)
    fast = make_queue()
    receiver.script("/stuck", [Reply(200, delay=2)])
    for _ in range(3):
        client.create_task(parent=slow, task={"http_request": {"url": receiver.url("/stuck")}})
    wait_until(lambda: receiver.received("/stuck"), timeout=5, what="slow queue busy")
    started = time.time()
    client.create_task(parent=fast, task={"http_request": {"url": receiver.url("/quick")}})

    request = wait_until(lambda: receiver.received("/quick"), timeout=5, what="fast queue delivery")[0]

    assert request.at - started < 0.5
    client.purge_queue(name=slow)


def test_body_round_trips_as_base64_bytes(client, make_queue, receiver: Receiver) -> None:
    queue = make_queue()
    payload = bytes(range(256))
    client.create_task(parent=queue, task={"http_request": {"url": receiver.url("/bin"), "body": payload}})

    request = wait_until(lambda: receiver.received("/bin"), timeout=5, what="delivery")[0]

    assert request.body == payload, base64.b64encode(request.body)
