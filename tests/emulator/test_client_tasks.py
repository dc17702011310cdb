"""Tasks through the official Python client, over gRPC and over REST: CRUD, views, dedup, errors."""

from __future__ import annotations

import datetime as dt

import pytest
from google.api_core import exceptions
from google.cloud import tasks_v2
from google.protobuf import duration_pb2, timestamp_pb2

from tests.emulator.receiver import Receiver
from tests.support.servers import wait_until

LATER = 3600  # seconds: far enough that the dispatcher leaves the task alone


def at(seconds_from_now: float) -> timestamp_pb2.Timestamp:
    """A protobuf timestamp ``seconds_from_now`` in the future."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds_from_now))
    return stamp


def http_task(url: str = "http://127.0.0.1:9/handler", body: bytes = b"", **extra) -> dict:  # type: ignore[no-untyped-def]
    """A task dict for ``create_task``."""
    return {"http_request": {"url": url, "body": body, "headers": {"Content-Type": "application/json"}}, **extra}


def test_create_get_delete_with_name(client, make_queue) -> None:
    queue = make_queue()
    name = f"{queue}/tasks/abc-123_x"

    created = client.create_task(parent=queue, task=http_task(name=name, schedule_time=at(LATER), body=b'{"a":1}'))

    assert created.name == name
    assert created.http_request.http_method == tasks_v2.HttpMethod.POST
    assert created.http_request.headers["User-Agent"] == "Google-Cloud-Tasks"
    assert created.http_request.headers["Content-Type"] == "application/json"
    assert created.dispatch_deadline.total_seconds() == 600
    assert created.create_time.timestamp() > 0
    fetched = client.get_task(name=name)
    assert fetched.name == name
    assert abs(fetched.schedule_time.timestamp() - created.schedule_time.timestamp()) < 1e-3
    client.delete_task(name=name)
    with pytest.raises(exceptions.NotFound, match="existed recently"):
        client.get_task(name=name)


def test_task_without_name_gets_generated_id(client, make_queue) -> None:
    queue = make_queue()

    created = client.create_task(parent=queue, task=http_task(schedule_time=at(LATER)))

    assert created.name.startswith(queue + "/tasks/")
    assert len(created.name.rsplit("/", 1)[1]) >= 10


def test_basic_view_omits_body_full_view_has_it(client, make_queue) -> None:
    queue = make_queue()
    name = client.create_task(parent=queue, task=http_task(body=b"payload", schedule_time=at(LATER))).name

    basic = client.get_task(name=name)
    full = client.get_task(request={"name": name, "response_view": tasks_v2.Task.View.FULL})
    listed_full = list(client.list_tasks(request={"parent": queue, "response_view": tasks_v2.Task.View.FULL}))

    assert basic.view == tasks_v2.Task.View.BASIC and basic.http_request.body == b""
    assert full.view == tasks_v2.Task.View.FULL and full.http_request.body == b"payload"
    assert list(client.list_tasks(parent=queue))[0].http_request.body == b""
    assert listed_full[0].http_request.body == b"payload"


def test_list_pagination(client, make_queue) -> None:
    queue = make_queue()
    names = [f"{queue}/tasks/t{i}" for i in range(5)]
    for name in names:
        client.create_task(parent=queue, task=http_task(name=name, schedule_time=at(LATER)))

    pages = list(client.list_tasks(request={"parent": queue, "page_size": 2}).pages)

    assert [len(p.tasks) for p in pages] == [2, 2, 1]
    assert sorted(t.name for p in pages for t in p.tasks) == names


def test_existing_name_conflicts(client, make_queue) -> None:
    queue = make_queue()
    task = http_task(name=f"{queue}/tasks/dup", schedule_time=at(LATER))
    client.create_task(parent=queue, task=task)

    with pytest.raises(exceptions.Conflict, match="already exists"):
        client.create_task(parent=queue, task=task)


def test_name_of_deleted_task_conflicts_within_window(client, make_queue) -> None:
    queue = make_queue()
    task = http_task(name=f"{queue}/tasks/deleted-one", schedule_time=at(LATER))
    client.create_task(parent=queue, task=task)
    client.delete_task(name=task["name"])

    with pytest.raises(exceptions.Conflict, match="existed too recently"):
        client.create_task(parent=queue, task=task)


def test_name_of_completed_task_conflicts_within_window(client, make_queue, receiver: Receiver) -> None:
    queue = make_queue()
    task = http_task(url=receiver.url("/done"), name=f"{queue}/tasks/completed-one")
    client.create_task(parent=queue, task=task)
    wait_until(lambda: receiver.received("/done"), timeout=5, what="delivery")

    def gone() -> bool:
        try:
            client.get_task(name=task["name"])
            return False
        except exceptions.NotFound:
            return True
    wait_until(gone, timeout=5, what="completed task removed")

    with pytest.raises(exceptions.Conflict, match="existed too recently"):
        client.create_task(parent=queue, task=task)


def test_unknown_queue_and_task_are_not_found(client, make_queue) -> None:
    queue = make_queue()

    with pytest.raises(exceptions.NotFound, match="Queue does not exist"):
        client.create_task(parent=queue + "-missing", task=http_task())
    with pytest.raises(exceptions.NotFound, match="Requested entity was not found"):
        client.get_task(name=f"{queue}/tasks/never-created")
    with pytest.raises(exceptions.NotFound):
        client.delete_task(name=f"{queue}/tasks/never-created")


def test_run_dispatches_now_even_when_paused(client, make_queue, receiver: Receiver) -> None:
    queue = make_queue()
    client.pause_queue(name=queue)
    name = client.create_task(parent=queue, task=http_task(url=receiver.url("/run"), schedule_time=at(LATER))).name

    ran = client.run_task(name=name)

    assert ran.name == name
    wait_until(lambda: receiver.received("/run"), timeout=5, what="forced dispatch")


def test_paused_queue_accepts_but_does_not_dispatch(client, make_queue, receiver: Receiver) -> None:
    queue = make_queue()
    client.pause_queue(name=queue)
    client.create_task(parent=queue, task=http_task(url=receiver.url("/paused")))
    marker = make_queue()
    client.create_task(parent=marker, task=http_task(url=receiver.url("/marker"), schedule_time=at(0.3)))

    wait_until(lambda: receiver.received("/marker"), timeout=5, what="a later task on another queue")
    assert receiver.received("/paused") == []
    client.resume_queue(name=queue)
    wait_until(lambda: receiver.received("/paused"), timeout=5, what="dispatch after resume")


# -- INVALID_ARGUMENT ------------------------------------------------------------------------

def duration(seconds: float) -> duration_pb2.Duration:
    """A protobuf duration."""
    value = duration_pb2.Duration()
    value.FromNanoseconds(int(seconds * 1e9))
    return value


@pytest.mark.parametrize("change, field", [
    (lambda q: {"name": f"{q}/tasks/bad id!"}, 'Task ID "bad id!" can contain only letters'),
    (lambda q: {"name": f"{q}/tasks/" + "x" * 501}, "Task ID must between 1 and 500 characters"),
    (lambda q: {"name": q.rsplit("/", 1)[0] + "/other-queue/tasks/t1"}, "must be the same as the queue name"),
    (lambda q: {"http_request": {"url": "http://127.0.0.1:9/", "body": b"x" * (1024 * 1024 + 1)}}, "body"),
    (lambda q: {"schedule_time": at(31 * 24 * 3600)}, "scheduleTime"),
    (lambda q: {"dispatch_deadline": duration(5)}, "dispatchDeadline"),
    (lambda q: {"dispatch_deadline": duration(31 * 60)}, "dispatchDeadline"),
    (lambda q: {"http_request": {"url": "ftp://example.com/x"}}, "url"),
    (lambda q: {"http_request": {"url": ""}}, "url"),
], ids=["id-chars", "id-length", "other-queue", "size", "schedule", "deadline-short", "deadline-long",
        "url-scheme", "url-missing"])
def test_invalid_task_names_field(client, make_queue, change, field) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue()
    task = {**http_task(), **change(queue)}

    with pytest.raises(exceptions.BadRequest, match=field) as info:
        client.create_task(parent=queue, task=task)
    assert info.value.grpc_status_code is None or info.value.grpc_status_code.name == "INVALID_ARGUMENT"


@pytest.mark.parametrize("queue, field", [
    ({"rate_limits": {"max_dispatches_per_second": 501}}, "maxDispatchesPerSecond"),
    ({"rate_limits": {"max_concurrent_dispatches": 5001}}, "maxConcurrentDispatches"),
    ({"retry_config": {"max_attempts": -2}}, "maxAttempts"),
    ({"retry_config": {"min_backoff": duration(10), "max_backoff": duration(5)}}, "minBackoff"),
    ({"retry_config": {"max_doublings": -1}}, "maxDoublings"),
], ids=["rate", "concurrency", "attempts", "backoff-order", "doublings"])
def test_invalid_queue_names_field(client, queue, field) -> None:  # type: ignore[no-untyped-def]
    from tests.emulator.conftest import PARENT

    with pytest.raises(exceptions.BadRequest, match=field):
        client.create_queue(parent=PARENT, queue={"name": f"{PARENT}/queues/invalid-{field}", **queue})


def test_invalid_queue_id(client) -> None:
    from tests.emulator.conftest import PARENT

    with pytest.raises(exceptions.BadRequest, match="queue id"):
        client.create_queue(parent=PARENT, queue={"name": f"{PARENT}/queues/under_score"})


def test_bad_json_is_invalid_argument(emulator, make_queue) -> None:
    """The official clients cannot send broken JSON, so this one case uses raw HTTP."""
    import requests

    queue = make_queue()
    resp = requests.post(f"{emulator.endpoint}/v2/{queue}/tasks", data=b"{not json", timeout=5)

    assert resp.status_code == 400
    assert resp.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "JSON" in resp.json()["error"]["message"]
