"""``OrderTasks`` against the real emulator and SQLite: schedule, reconcile, cancel, status."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ordertasks.handlers.contract import encode
from ordertasks.handlers.dispatch import Delivery, Outcome
from ordertasks.handlers.wiring import build_dispatcher
from ordertasks.producer.enqueue import queue_path
from ordertasks.producer.library import OrderNotFound, OrderTasks
from tests.effects.orders import eur_order
from tests.producer.conftest import Emulator, make_settings
from tests.support.servers import wait_until


def order(order_id: str) -> dict[str, Any]:
    """A paid order snapshot as a shop's checkout would hand it over."""
    return {"order_id": order_id, **eur_order().model_dump(mode="json")}


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    running = Emulator(tmp_path).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def tasks(tmp_path: Path, emulator: Emulator) -> Iterator[OrderTasks]:
    with OrderTasks.from_settings(make_settings(tmp_path, emulator.host)) as library:
        yield library


def names_in_queues(tasks: OrderTasks, order_id: str) -> list[str]:
    """Every task of ``order_id`` the emulator holds."""
    cat, client = tasks.catalog, tasks.enqueuer.client
    return [t.name for q in cat.queues for t in client.list_tasks(parent=queue_path(cat.project, cat.region, q))
            if f"-{order_id}-" in t.name]


def test_schedule_twice_creates_each_task_once(tasks: OrderTasks) -> None:
    first = tasks.schedule(order("ord_lib_twice"))
    assert [r.kind for r in first] == tasks.kinds and {r.state for r in first} == {"created"}
    again = tasks.schedule(order("ord_lib_twice"))
    assert [(r.kind, r.name, r.state) for r in again] == [(r.kind, r.name, "exists") for r in first]
    assert sorted(names_in_queues(tasks, "ord_lib_twice")) == sorted(r.name for r in first)
    assert {t["state"] for t in tasks.status("ord_lib_twice")["tasks"]} == {"scheduled"}


def test_an_outage_during_schedule_leaves_pending_tasks_that_reconcile_creates_once(
        tasks: OrderTasks, emulator: Emulator) -> None:
    emulator.stop()
    pending = tasks.schedule(order("ord_lib_outage"))
    assert {r.state for r in pending} == {"pending"}
    assert {t["state"] for t in tasks.status("ord_lib_outage")["tasks"]} == {"pending"}
    emulator.start()
    summary = tasks.reconcile(grace_seconds=0)
    assert summary.scheduled == len(tasks.kinds), summary
    names = names_in_queues(tasks, "ord_lib_outage")
    assert len(names) == len(set(names)) == len(tasks.kinds)
    assert tasks.reconcile(grace_seconds=0).pending == 0


def test_cancel_before_dispatch_removes_the_tasks_and_stops_every_effect(tmp_path: Path, tasks: OrderTasks) -> None:
    tasks.schedule(order("ord_lib_cancel"))
    results = tasks.cancel("ord_lib_cancel")
    assert [(r.kind, r.state) for r in results] == [(k, "cancelled") for k in tasks.kinds]
    assert names_in_queues(tasks, "ord_lib_cancel") == []
    assert tasks.cancel("ord_lib_cancel") == results                      # twice: the same answer
    view = tasks.status("ord_lib_cancel")
    assert view["status"] == "cancelled" and {t["state"] for t in view["tasks"]} == {"cancelled"}
    performed: list[str] = []
    dispatcher = build_dispatcher(tasks.settings, stores=tasks.stores, effects={
        kind: (lambda task, ctx: performed.append(task.kind) or {}) for kind in tasks.kinds})
    for kind in tasks.kinds:   # a delivery already on its way when the cancel came
        assert dispatcher.run(Delivery(encode(kind, "ord_lib_cancel"))).outcome is Outcome.CANCELLED
    assert performed == []


def test_cancel_of_one_kind_leaves_the_others(tasks: OrderTasks) -> None:
    tasks.schedule(order("ord_lib_partial"))
    kind = tasks.kinds[-1]
    assert [(r.kind, r.state) for r in tasks.cancel("ord_lib_partial", kinds=[kind])] == [(kind, "cancelled")]
    states = {t["kind"]: t["state"] for t in tasks.status("ord_lib_partial")["tasks"]}
    assert states.pop(kind) == "cancelled" and set(states.values()) == {"scheduled"}
    assert len(names_in_queues(tasks, "ord_lib_partial")) == len(tasks.kinds) - 1


def test_cancel_racing_twenty_deliveries_allows_no_effect_after_it_is_recorded(tasks: OrderTasks) -> None:
    tasks.schedule(order("ord_lib_race"))
    performed: Counter[str] = Counter()
    lock = threading.Lock()

    def slow_effect(task: Any, ctx: Any) -> dict[str, Any]:
        time.sleep(0.05)       # a real effect takes time: the cancel lands while some are in flight
        with lock:
            performed[task.kind] += 1
        return {}
    dispatcher = build_dispatcher(tasks.settings, stores=tasks.stores,
                                  effects={kind: slow_effect for kind in tasks.kinds})
    deliveries = [Delivery(encode(kind, "ord_lib_race")) for kind in tasks.kinds for _ in range(20 // len(tasks.kinds) + 1)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = pool.map(dispatcher.run, deliveries[: len(deliveries) // 2])
        cancelled = tasks.cancel("ord_lib_race")
        outcomes = list(outcomes) + list(pool.map(dispatcher.run, deliveries[len(deliveries) // 2:]))
    state = {r.kind: r.state for r in cancelled}
    wait_until(lambda: all(performed[k] == (1 if state[k] in ("done", "in_flight") else 0) for k in state),
               timeout=10, what="effects settled")
    assert all(o.outcome is not Outcome.DONE or state[o.kind] in ("done", "in_flight") for o in outcomes)
    assert set(state.values()) <= {"cancelled", "done", "in_flight"}


def test_status_and_cancel_of_an_unknown_order_say_so(tasks: OrderTasks) -> None:
    for call in (tasks.status, tasks.cancel):
        with pytest.raises(OrderNotFound, match="no order 'ord_never'"):
            call("ord_never")
