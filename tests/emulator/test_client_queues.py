"""Queues through the official Python client, over gRPC and over REST."""

from __future__ import annotations

import uuid

import pytest
from google.api_core import exceptions
from google.cloud import tasks_v2
from google.protobuf import field_mask_pb2

from tests.emulator.conftest import PARENT


def test_create_get_list_delete(client, make_queue) -> None:
    name = make_queue(rate=7, burst=3, concurrent=4, attempts=6, min_backoff=0.5, max_backoff=20, doublings=2)

    queue = client.get_queue(name=name)

    assert queue.state == tasks_v2.Queue.State.RUNNING
    assert queue.rate_limits.max_dispatches_per_second == 7
    assert queue.rate_limits.max_burst_size == 3
    assert queue.rate_limits.max_concurrent_dispatches == 4
    assert queue.retry_config.max_attempts == 6
    assert queue.retry_config.min_backoff.total_seconds() == 0.5
    assert queue.retry_config.max_backoff.total_seconds() == 20
    assert queue.retry_config.max_doublings == 2
    assert name in [q.name for q in client.list_queues(parent=PARENT)]

    client.delete_queue(name=name)

    with pytest.raises(exceptions.NotFound, match="Queue does not exist"):
        client.get_queue(name=name)


def test_new_queue_gets_cloud_tasks_defaults(client) -> None:
    name = f"{PARENT}/queues/defaults-{uuid.uuid4().hex[:8]}"

    queue = client.create_queue(parent=PARENT, queue={"name": name})

    assert queue.rate_limits.max_dispatches_per_second == 500
    assert queue.rate_limits.max_burst_size == 100
    assert queue.rate_limits.max_concurrent_dispatches == 1000
    assert queue.retry_config.max_attempts == 100
    assert queue.retry_config.min_backoff.total_seconds() == 0.1
    assert queue.retry_config.max_backoff.total_seconds() == 3600
    assert queue.retry_config.max_doublings == 16
    client.delete_queue(name=name)


def test_create_existing_queue_conflicts(client, make_queue) -> None:
    name = make_queue()

    with pytest.raises(exceptions.Conflict):
        client.create_queue(parent=PARENT, queue={"name": name})


def test_patch_changes_only_masked_fields(client, make_queue) -> None:
    name = make_queue(rate=10, attempts=3)
    mask = field_mask_pb2.FieldMask(paths=["rate_limits.max_dispatches_per_second"])

    updated = client.update_queue(queue={"name": name, "rate_limits": {"max_dispatches_per_second": 42},
                                         "retry_config": {"max_attempts": 9}}, update_mask=mask)

    assert updated.rate_limits.max_dispatches_per_second == 42
    assert updated.retry_config.max_attempts == 3
    assert client.get_queue(name=name).rate_limits.max_dispatches_per_second == 42


def test_patch_of_unknown_queue_creates_it(client) -> None:
    name = f"{PARENT}/queues/patched-{uuid.uuid4().hex[:8]}"
    mask = field_mask_pb2.FieldMask(paths=["retry_config.max_attempts"])

    queue = client.update_queue(queue={"name": name, "retry_config": {"max_attempts": 4}}, update_mask=mask)

    assert queue.retry_config.max_attempts == 4
    assert client.get_queue(name=name).retry_config.max_attempts == 4
    client.delete_queue(name=name)


def test_pause_resume_and_list_filter(client, make_queue) -> None:
    name = make_queue()

    assert client.pause_queue(name=name).state == tasks_v2.Queue.State.PAUSED
    paused = [q.name for q in client.list_queues(request={"parent": PARENT, "filter": "state: PAUSED"})]
    assert name in paused
    assert client.resume_queue(name=name).state == tasks_v2.Queue.State.RUNNING
    assert client.get_queue(name=name).state == tasks_v2.Queue.State.RUNNING


def test_purge_deletes_tasks_and_sets_purge_time(client, make_queue) -> None:
    name = make_queue()
    client.pause_queue(name=name)
    for _ in range(3):
        client.create_task(parent=name, task={"http_request": {"url": "http://127.0.0.1:9/"}})

    queue = client.purge_queue(name=name)

    assert queue.purge_time.timestamp() > 0
    assert list(client.list_tasks(parent=name)) == []


def test_queue_list_pagination(client) -> None:
    parent = f"projects/paging-{uuid.uuid4().hex[:8]}/locations/us-east1"
    names = [f"{parent}/queues/page-{i}" for i in range(5)]
    for name in names:
        client.create_queue(parent=parent, queue={"name": name})

    pages = list(client.list_queues(request={"parent": parent, "page_size": 2}).pages)

    assert [len(p.queues) for p in pages] == [2, 2, 1]
    assert [q.name for p in pages for q in p.queues] == names


def test_recreating_a_deleted_queue_fails_for_the_real_window(client, make_queue) -> None:
    name = make_queue()
    client.delete_queue(name=name)

    # FAILED_PRECONDITION: FailedPrecondition over gRPC, BadRequest (HTTP 400) over REST.
    with pytest.raises((exceptions.FailedPrecondition, exceptions.BadRequest), match="existed too recently"):
        client.create_queue(parent=PARENT, queue={"name": name})
