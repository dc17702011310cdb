"""Effect states (docs/library.md, "Effect states"): what the handler records on a failed
attempt and how ``OrderTasks.status`` and ``ordertasks stats`` name it, in process.

The handler runs over in-memory stores with a fixed clock; the warehouse is a plain function
that raises what the real client raises (no mock of our own code). The end-to-end version,
over the dev stack and in the console, is ``tests/console/test_retrying.py``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ordertasks.handlers.backends.memory import MemoryStore
from ordertasks.handlers.contract import Task
from ordertasks.handlers.dispatch import Delivery, Dispatcher, Outcome
from ordertasks.handlers.errors import DependencyUnavailable, Rejected, Throttled
from ordertasks.handlers.kind import EffectContext
from ordertasks.handlers.ports import (EffectRecord, FailedTask, IN_PROGRESS_STATES, SETTLED_STATES, FailedStatus,
                                       TaskState)
from ordertasks.handlers.settings import Settings, StoreSettings
from ordertasks.handlers.wiring import build_dispatcher
from ordertasks.producer.effect_states import effect_state
from ordertasks.producer.enqueue import TaskPlanner
from ordertasks.producer.library import OrderRecords, order_parts
from ordertasks.producer.stats import STATE_COLUMNS, kind_row
from tests.effects.orders import FixedClock, eur_order
from tests.support.orders import body
from tests.support.samples import fast_catalog

KIND = "notify_warehouse"
ORDER = "ord_states_1"
DOWN = "warehouse https://wh.example/notifications answered 503: {\"error\": \"warehouse is down\"}"


class Warehouse:
    """The far end as a function: raises the queued errors in turn, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)

    def __call__(self, task: Task, ctx: EffectContext) -> dict[str, Any]:
        if self.errors:
            raise self.errors.pop(0)
        return {"status": 201, "reference": "wh-1"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(catalog_path=fast_catalog(tmp_path, max_attempts=3), store=StoreSettings(data_dir=tmp_path))


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def records(settings: Settings, store: MemoryStore, clock: FixedClock) -> OrderRecords:
    """The library's store side over the memory stores, with one order paid and scheduled."""
    library = OrderRecords(settings, store, TaskPlanner(settings, clock=clock), clock)
    order_id, snapshot = order_parts({"order_id": ORDER, **eur_order().model_dump(mode="json")})
    assert library.record_paid(order_id, snapshot)
    store.orders.mark_scheduled_many(ORDER, library.kinds, clock.now())
    return library


def handler(settings: Settings, store: MemoryStore, clock: FixedClock, warehouse: Warehouse) -> Dispatcher:
    return build_dispatcher(settings, stores=store, clock=clock, effects={KIND: warehouse})


def deliver(dispatcher: Dispatcher, attempt: int) -> Outcome:
    return dispatcher.run(Delivery(body(KIND, ORDER), queue_name="ordertasks-warehouse", retry_count=attempt - 1)).outcome


def warehouse_view(records: OrderRecords) -> dict[str, Any]:
    return next(t for t in records.status(ORDER)["tasks"] if t["kind"] == KIND)


def stats_states(records: OrderRecords, store: MemoryStore, clock: FixedClock) -> dict[str, int]:
    row = kind_row(store.failed, records.effects, KIND, clock.now())
    return dict(zip(STATE_COLUMNS, (int(cell) for cell in row[1:1 + len(STATE_COLUMNS)])))


def test_a_failed_attempt_with_attempts_left_is_retrying_with_what_and_when(
        settings: Settings, store: MemoryStore, clock: FixedClock, records: OrderRecords) -> None:
    dispatcher = handler(settings, store, clock, Warehouse(DependencyUnavailable(DOWN), DependencyUnavailable(DOWN)))
    assert deliver(dispatcher, 1) is Outcome.RETRY
    first = warehouse_view(records)
    assert (first["state"], first["attempt"], first["max_attempts"]) == ("retrying", 1, 3)
    assert first["next_attempt_at"] == (clock.now() + timedelta(seconds=0.1)).isoformat()   # min_backoff
    clock.current += timedelta(seconds=1)
    assert deliver(dispatcher, 2) is Outcome.RETRY
    second = warehouse_view(records)
    assert (second["state"], second["attempt"], second["max_attempts"], second["last_error"]) == ("retrying", 2, 3, DOWN)
    assert second["next_attempt_at"] == (clock.now() + timedelta(seconds=0.2)).isoformat()  # doubled
    assert stats_states(records, store, clock) == {"done": 0, "running": 0, "retrying": 1, "failed": 0, "cancelled": 0}


def test_a_longer_retry_after_sets_the_next_attempt(settings: Settings, store: MemoryStore, clock: FixedClock,
                                                    records: OrderRecords) -> None:
    throttled = Throttled("warehouse https://wh.example/notifications answered 429 Too Many Requests", retry_after=90)
    assert deliver(handler(settings, store, clock, Warehouse(throttled)), 1) is Outcome.RETRY
    view = warehouse_view(records)
    assert view["next_attempt_at"] == (clock.now() + timedelta(seconds=90)).isoformat()
    assert view["last_error"] == "warehouse https://wh.example/notifications answered 429 Too Many Requests"


def test_the_last_attempt_makes_it_failed_never_in_progress(settings: Settings, store: MemoryStore, clock: FixedClock,
                                                           records: OrderRecords) -> None:
    dispatcher = handler(settings, store, clock, Warehouse(*(DependencyUnavailable(DOWN) for _ in range(3))))
    assert [deliver(dispatcher, n) for n in (1, 2, 3)] == [Outcome.RETRY, Outcome.RETRY, Outcome.DEAD]
    view = warehouse_view(records)
    assert (view["state"], view["attempt"], view["max_attempts"], view["next_attempt_at"]) == ("failed", 3, 3, None)
    assert view["last_error"] == DOWN
    assert stats_states(records, store, clock) == {"done": 0, "running": 0, "retrying": 0, "failed": 1, "cancelled": 0}


def test_a_rejection_is_failed_at_once(settings: Settings, store: MemoryStore, clock: FixedClock,
                                       records: OrderRecords) -> None:
    refusal = "warehouse https://wh.example/notifications refused the request with 422: unknown SKU"
    assert deliver(handler(settings, store, clock, Warehouse(Rejected(refusal))), 1) is Outcome.DEAD
    view = warehouse_view(records)
    assert (view["state"], view["attempt"], view["last_error"], view["next_attempt_at"]) == ("failed", 1, refusal, None)
    assert stats_states(records, store, clock)["failed"] == 1


def test_a_replay_that_succeeds_is_done_and_the_fields_no_longer_show(
        settings: Settings, store: MemoryStore, clock: FixedClock, records: OrderRecords) -> None:
    dispatcher = handler(settings, store, clock, Warehouse(DependencyUnavailable(DOWN)))
    deliver(dispatcher, 1)
    assert deliver(dispatcher, 2) is Outcome.DONE
    view = warehouse_view(records)
    assert (view["state"], view["attempt"], view["last_error"], view["next_attempt_at"]) == ("done", None, None, None)
    assert stats_states(records, store, clock) == {"done": 1, "running": 0, "retrying": 0, "failed": 0, "cancelled": 0}


def test_an_order_the_kind_cannot_use_is_failed_in_every_view(settings: Settings, store: MemoryStore,
                                                              clock: FixedClock) -> None:
    library = OrderRecords(settings, store, TaskPlanner(settings, clock=clock), clock)
    data = {"order_id": ORDER, **eur_order().model_dump(mode="json")}
    data.pop("shipping_address")
    assert library.record_paid(*order_parts(data))
    assert deliver(handler(settings, store, clock, Warehouse()), 1) is Outcome.DEAD
    view = warehouse_view(library)
    assert (view["state"], view["attempt"]) == ("failed", 1) and "shipping_address" in view["last_error"]
    assert stats_states(library, store, clock)["failed"] == 1


# --- the order of sources (producer.effect_states) ------------------------------------


def record(state: str, **fields: Any) -> EffectRecord:
    now = FixedClock().now()
    return EffectRecord(ORDER, KIND, state, 1, fields.pop("lease", None), now, now, now + timedelta(days=1), **fields)


def entry(status: str, resolved_by: str | None = None) -> FailedTask:
    now = FixedClock().now()
    return FailedTask(f"{ORDER}:{KIND}", ORDER, KIND, "q", "t", {}, "Rejected", "422", 3, now, now, status, [],
                      resolved_by=resolved_by)


@pytest.mark.parametrize(("effect", "failed", "order_status", "expected"), [
    (record("retrying"), None, "paid", "retrying"),
    (record("retrying"), None, "cancelled", "cancelled"),
    (record("retrying"), entry(FailedStatus.OPEN), "paid", "failed"),           # e.g. the auditor gave up on it
    (record("failed"), entry(FailedStatus.OPEN), "paid", "failed"),
    (record("failed"), entry(FailedStatus.REPLAYED), "paid", "scheduled"),      # the replay waits in Cloud Tasks
    (record("failed"), entry(FailedStatus.RESOLVED, "ops@shop"), "paid", "failed"),
    (None, entry(FailedStatus.RESOLVED, "ops@shop"), "paid", "failed"),         # closed by a person, never ran
    (record("in_progress", lease=FixedClock().now()), None, "paid", "running"),
    (record("done"), entry(FailedStatus.OPEN), "paid", "done"),
    (record("cancelled"), None, "paid", "cancelled"),
    (None, None, "paid", "scheduled"),
])
def test_which_source_names_the_state(effect: EffectRecord | None, failed: FailedTask | None, order_status: str,
                                      expected: str) -> None:
    assert effect_state("scheduled", effect, failed, order_status) == expected


def test_failed_and_cancelled_are_settled_never_in_progress() -> None:
    assert {TaskState.FAILED, TaskState.CANCELLED} <= SETTLED_STATES
    assert not IN_PROGRESS_STATES & SETTLED_STATES
    assert IN_PROGRESS_STATES | SETTLED_STATES == set(TaskState)
