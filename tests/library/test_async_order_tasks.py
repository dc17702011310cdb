"""``AsyncOrderTasks`` against the real emulator (gRPC aio) and SQLite: schedule, status,
cancel, reconcile and the audit, the same answers as ``OrderTasks``; a resubmit that Cloud
Tasks answers ALREADY_EXISTS; ``async with`` closing the channel; REST refused with advice.

Each test is a coroutine run by ``asyncio.run`` (no pytest plugin); the emulator's queues
are paused so tasks stay where the test can list them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ordertasks import AsyncOrderTasks
from ordertasks.handlers.errors import ConfigurationError
from ordertasks.handlers.config import Settings
from ordertasks.handlers.kind import SystemClock
from ordertasks.handlers.wiring import build_stores
from ordertasks.producer.async_library import async_tasks_client
from ordertasks.producer.enqueue import AsyncEnqueuer, queue_path
from ordertasks.producer.library import OrderNotFound
from ordertasks.producer.wiring import tasks_client
from tests.effects.orders import eur_order
from tests.producer.conftest import CATALOG, Emulator, make_settings, pause_all

T = TypeVar("T")


def run(scenario: Coroutine[Any, Any, T]) -> T:
    """Run one test's coroutine on a fresh event loop."""
    return asyncio.run(scenario)


def order(name: str) -> dict[str, Any]:
    """A paid order with a fresh id (the emulator is shared by the module's tests)."""
    return {"order_id": f"{name}_{uuid.uuid4().hex[:8]}", **eur_order().model_dump(mode="json")}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    running = Emulator(tmp_path_factory.mktemp("async-emulator")).start()
    try:
        settings = make_settings(tmp_path_factory.mktemp("pause"), running.host)
        pause_all(tasks_client(settings), settings.catalog())
        yield running
    finally:
        running.stop()


@pytest.fixture
def settings(tmp_path: Path, emulator: Emulator) -> Settings:
    return make_settings(tmp_path, emulator.host)


def names_in_queues(settings: Settings, order_id: str) -> list[str]:
    """Every task of ``order_id`` the emulator holds (read with the synchronous client)."""
    catalog, client = settings.catalog(), tasks_client(settings)
    parents = [queue_path(catalog.project, catalog.region, q) for q in catalog.queues]
    return [t.name for parent in parents for t in client.list_tasks(parent=parent) if f"-{order_id}-" in t.name]


class LaterClock:
    """The real time plus ``ahead`` (the auditor's entries come due without waiting)."""

    def __init__(self, ahead: timedelta) -> None:
        self.ahead = ahead

    def now(self) -> datetime:
        """Now, ``ahead`` from now."""
        return SystemClock().now() + self.ahead


def test_schedule_status_and_cancel_round_trip_over_grpc(settings: Settings) -> None:
    paid = order("ord_async_round")

    async def scenario() -> None:
        async with AsyncOrderTasks.from_settings(settings) as tasks:
            first = await tasks.schedule(paid)
            assert [r.kind for r in first] == tasks.kinds and {r.state for r in first} == {"created"}
            assert sorted(names_in_queues(settings, paid["order_id"])) == sorted(r.name for r in first)
            view = await tasks.status(paid["order_id"])
            assert view["status"] == "paid" and {t["state"] for t in view["tasks"]} == {"scheduled"}
            again = await tasks.schedule(paid)
            assert [(r.name, r.state) for r in again] == [(r.name, "exists") for r in first]
            cancelled = await tasks.cancel(paid["order_id"])
            assert [(r.kind, r.state) for r in cancelled] == [(k, "cancelled") for k in tasks.kinds]
            assert names_in_queues(settings, paid["order_id"]) == []
            assert await tasks.cancel(paid["order_id"]) == cancelled          # twice: the same answer
            view = await tasks.status(paid["order_id"])
            assert view["status"] == "cancelled" and {t["state"] for t in view["tasks"]} == {"cancelled"}
            assert {r.state for r in await tasks.schedule(paid)} == {"cancelled"}
    run(scenario())


def test_cancel_of_one_kind_leaves_the_others(settings: Settings) -> None:
    paid = order("ord_async_partial")

    async def scenario() -> None:
        async with AsyncOrderTasks.from_settings(settings) as tasks:
            await tasks.schedule(paid)
            kind = tasks.kinds[-1]
            one = await tasks.cancel(paid["order_id"], kinds=[kind])
            assert [(r.kind, r.state) for r in one] == [(kind, "cancelled")]
            states = {t["kind"]: t["state"] for t in (await tasks.status(paid["order_id"]))["tasks"]}
            assert states.pop(kind) == "cancelled" and set(states.values()) == {"scheduled"}
    run(scenario())
    assert len(names_in_queues(settings, paid["order_id"])) == len(settings.catalog().kinds) - 1


def test_a_resubmit_that_cloud_tasks_already_holds_is_success(tmp_path: Path, emulator: Emulator) -> None:
    """A second deployment (its own store) schedules the same order: every create answers
    ALREADY_EXISTS, which is ``exists``, and the outbox records the tasks as scheduled."""
    paid = order("ord_async_resubmit")
    first_settings = make_settings(tmp_path / "first", emulator.host)
    second_settings = make_settings(tmp_path / "second", emulator.host)

    async def scenario() -> None:
        async with AsyncOrderTasks.from_settings(first_settings) as first:
            assert {r.state for r in await first.schedule(paid)} == {"created"}
        async with AsyncOrderTasks.from_settings(second_settings) as second:
            assert {r.state for r in await second.schedule(paid)} == {"exists"}
            assert {t["state"] for t in (await second.status(paid["order_id"]))["tasks"]} == {"scheduled"}
    run(scenario())
    names = names_in_queues(first_settings, paid["order_id"])
    assert len(names) == len(set(names)) == len(first_settings.catalog().kinds)


def test_an_outage_leaves_pending_tasks_that_reconcile_creates_once(tmp_path: Path) -> None:
    emulator = Emulator(tmp_path).start()
    settings = make_settings(tmp_path, emulator.host)
    paid = order("ord_async_outage")

    async def scenario() -> None:
        async with AsyncOrderTasks.from_settings(settings) as tasks:
            emulator.stop()
            assert {r.state for r in await tasks.schedule(paid)} == {"pending"}
            assert {t["state"] for t in (await tasks.status(paid["order_id"]))["tasks"]} == {"pending"}
            emulator.start()
            summary = await tasks.reconcile(grace_seconds=0)
            assert (summary.orders, summary.scheduled, summary.failed) == (1, len(tasks.kinds), 0), summary
            assert summary.audit is not None and summary.audit.errors == 0
            assert (await tasks.reconcile(grace_seconds=0)).pending == 0
    try:
        run(scenario())
        names = names_in_queues(settings, paid["order_id"])
        assert len(names) == len(set(names)) == len(settings.catalog().kinds)
    finally:
        emulator.stop()


def test_the_audit_recreates_a_task_cloud_tasks_dropped(settings: Settings) -> None:
    """The synchronous auditor on a worker thread, its GetTask and re-creation on the loop's client."""
    paid = order("ord_async_audit")
    dropped: list[str] = []

    async def scenario() -> None:
        async with AsyncOrderTasks.from_settings(settings) as tasks:
            results = await tasks.schedule(paid)
            dropped.append(results[0].name)
            tasks_client(settings).delete_task(name=dropped[0])    # as Cloud Tasks does after its retries
        kinds = len(settings.catalog().kinds)
        enqueuer = AsyncEnqueuer(None, settings, connect=lambda: async_tasks_client(settings))
        async with AsyncOrderTasks(settings, build_stores(settings), enqueuer, LaterClock(timedelta(days=30)),
                                   owned=True) as later:
            audit = await later.audit()
            assert (audit.looked, audit.recreated, audit.live, audit.errors) == (kinds, 1, kinds - 1, 0), audit
    run(scenario())
    names = names_in_queues(settings, paid["order_id"])
    assert dropped[0] not in names and dropped[0] + "-a1" in names and len(names) == len(settings.catalog().kinds)


def test_async_with_from_env_closes_its_channel(tmp_path: Path, emulator: Emulator) -> None:
    environ = {"ORDERTASKS_BACKEND": "local", "ORDERTASKS_CONFIG": str(CATALOG), "ORDERTASKS_DATA_DIR": str(tmp_path),
               "CLOUD_TASKS_EMULATOR_HOST": emulator.host, "ORDERTASKS_HANDLER_URL": "http://127.0.0.1:9/tasks",
               "ORDERTASKS_OIDC_VERIFY": "false"}
    paid = order("ord_async_env")

    async def scenario() -> Any:
        async with AsyncOrderTasks.from_env(environ) as tasks:
            results = await tasks.schedule(paid)
            assert {r.state for r in results} == {"created"}
            client = tasks.enqueuer.client
            assert type(client).__name__ == "CloudTasksAsyncClient"
            assert str(client.transport.grpc_channel.get_state()).endswith("READY")
        assert str(client.transport.grpc_channel.get_state()).endswith("SHUTDOWN")
        with pytest.raises(Exception, match="[Cc]losed"):
            await client.get_task(name=results[0].name)
    run(scenario())


def test_the_rest_transport_is_refused_with_what_to_do(tmp_path: Path, emulator: Emulator) -> None:
    with pytest.raises(ConfigurationError, match="gRPC only.*ORDERTASKS_TASKS_TRANSPORT"):
        AsyncOrderTasks.from_settings(make_settings(tmp_path, emulator.host, tasks={"transport": "rest"}))


def test_status_and_cancel_of_an_unknown_order_say_so(settings: Settings) -> None:
    async def scenario() -> None:
        async with AsyncOrderTasks.from_settings(settings) as tasks:
            for call in (tasks.status, tasks.cancel):
                with pytest.raises(OrderNotFound, match="no order 'ord_never'"):
                    await call("ord_never")
    run(scenario())


def test_a_create_error_leaves_the_task_pending(tmp_path: Path) -> None:
    """Nothing listens: every create fails fast, the order is stored and its tasks pending."""
    settings = make_settings(tmp_path, "127.0.0.1:9", tasks={"enqueue_timeout_seconds": 0.5})

    async def scenario() -> None:
        async with AsyncOrderTasks.from_settings(settings) as tasks:
            results = await tasks.schedule(order("ord_async_down"))
            assert {r.state for r in results} == {"pending"} and all(r.error for r in results)
    run(scenario())
