"""The Cloud Tasks contract the library relies on, over ``InProcessCloudTasks`` and the emulator.

One suite, two backends (as ``tests/contract`` runs each store over every backend): what
``ordertasks.testing``'s queue promises is what the emulator (and Cloud Tasks) does for the
calls ``Enqueuer``, ``cancel`` and the auditor make: named tasks, schedule times,
``ALREADY_EXISTS`` for a name held or recently gone, ``NOT_FOUND`` for one not held.
The emulator's queues are paused, so it keeps every task where it was put.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from ordertasks.handlers.settings import Settings
from ordertasks.infra.config import REPO_ROOT
from ordertasks.producer.enqueue import queue_path
from ordertasks.testing import InProcessCloudTasks, ManualClock

CATALOG = REPO_ROOT / "infra" / "tasks.toml"
LATER = timedelta(hours=1)


@pytest.fixture(scope="module")
def emulator_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real client on one emulator for the module, its catalog queues paused."""
    from ordertasks.producer.wiring import tasks_client
    from tests.producer.conftest import Emulator, make_settings, pause_all

    tmp = tmp_path_factory.mktemp("queue-contract")
    emulator = Emulator(tmp).start()
    settings = make_settings(tmp, emulator.host)
    client = tasks_client(settings)
    pause_all(client, settings.catalog())
    try:
        yield client
    finally:
        client.transport.close()
        emulator.stop()


@pytest.fixture(params=["in_process", "emulator"])
def client(request: pytest.FixtureRequest) -> Any:
    """A client of each backend; the in-process one on a clock standing at the wall clock's now."""
    if request.param == "emulator":
        return request.getfixturevalue("emulator_client")
    return InProcessCloudTasks(Settings(catalog_path=CATALOG).catalog(), ManualClock(datetime.now(UTC)))


@pytest.fixture
def queue() -> str:
    """The email queue's full name."""
    catalog = Settings(catalog_path=CATALOG).catalog()
    return queue_path(catalog.project, catalog.region, "ordertasks-email")


def unique_name(queue: str, tag: str) -> str:
    """A task name no other test (nor an earlier run on the shared emulator) used."""
    return f"{queue}/tasks/{tag}-{datetime.now(UTC).strftime('%H%M%S%f')}"


def http_task(name: str, due: datetime | None) -> dict[str, Any]:
    """A task as the Enqueuer builds it, as a dict."""
    task: dict[str, Any] = {"name": name, "http_request": {"url": "http://127.0.0.1:9/tasks", "body": b'{"v":2}',
                                                          "headers": {"Content-Type": "application/json"}}}
    return task | ({"schedule_time": due} if due is not None else {})


def test_a_named_task_is_created_and_read_back_with_its_schedule(client: Any, queue: str) -> None:
    name, due = unique_name(queue, "read"), datetime.now(UTC) + LATER
    created = client.create_task(parent=queue, task=http_task(name, due))
    fetched = client.get_task(name=name)
    assert created.name == fetched.name == name
    assert abs((fetched.schedule_time - due).total_seconds()) < 1e-3
    assert name in [t.name for t in client.list_tasks(request={"parent": queue, "page_size": 1000})]


def test_the_same_name_again_is_already_exists_a_conflict(client: Any, queue: str) -> None:
    name = unique_name(queue, "twice")
    client.create_task(parent=queue, task=http_task(name, datetime.now(UTC) + LATER))
    with pytest.raises(gexc.Conflict):
        client.create_task(parent=queue, task=http_task(name, datetime.now(UTC) + LATER))


def test_a_deleted_name_is_not_found_and_cannot_be_reused_soon(client: Any, queue: str) -> None:
    name = unique_name(queue, "deleted")
    client.create_task(parent=queue, task=http_task(name, datetime.now(UTC) + LATER))
    client.delete_task(name=name)
    with pytest.raises(gexc.NotFound):
        client.get_task(name=name)
    with pytest.raises(gexc.NotFound):
        client.delete_task(name=name)
    with pytest.raises(gexc.Conflict):
        client.create_task(parent=queue, task=http_task(name, datetime.now(UTC) + LATER))


def test_a_past_or_missing_schedule_time_means_now(client: Any, queue: str) -> None:
    before = datetime.now(UTC)
    past = client.create_task(parent=queue, task=http_task(unique_name(queue, "past"), before - LATER))
    unset = client.create_task(parent=queue, task=http_task(unique_name(queue, "unset"), None))
    for task in (past, unset):
        assert before - timedelta(seconds=1) <= task.schedule_time <= datetime.now(UTC) + timedelta(seconds=1)


def test_a_task_without_a_name_gets_one_in_its_queue(client: Any, queue: str) -> None:
    created = client.create_task(parent=queue, task=http_task("", datetime.now(UTC) + LATER))
    assert created.name.startswith(queue + "/tasks/") and len(created.name) > len(queue + "/tasks/")


def test_a_queue_the_catalog_does_not_have_is_not_found(client: Any, queue: str) -> None:
    other = queue.rsplit("/", 1)[0] + "/no-such-queue"
    with pytest.raises(gexc.NotFound):
        client.create_task(parent=other, task=http_task(f"{other}/tasks/x", None))
    with pytest.raises(gexc.NotFound):
        client.get_task(name=f"{other}/tasks/x")


def test_a_name_in_another_queue_is_refused(client: Any, queue: str) -> None:
    other = queue.rsplit("/", 1)[0] + "/ordertasks-invoice"
    with pytest.raises(gexc.InvalidArgument):
        client.create_task(parent=queue, task=http_task(f"{other}/tasks/elsewhere", None))


def test_in_process_names_are_free_again_after_the_dedup_window(queue: str) -> None:
    clock = ManualClock(datetime.now(UTC))
    client = InProcessCloudTasks(Settings(catalog_path=CATALOG).catalog(), clock)
    name = f"{queue}/tasks/window"
    client.create_task(parent=queue, task=http_task(name, None))
    client.delete_task(name=name)
    clock.advance(timedelta(hours=1, seconds=1))
    assert client.create_task(parent=queue, task=http_task(name, None)).name == name
