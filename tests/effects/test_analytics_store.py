"""record_analytics over the real SQLite store: counted once, in the right shard and day."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest

from ordertasks.handlers.kinds.record_analytics import record_analytics, shard_for
from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.handlers.kind import EffectContext
from tests.effects.orders import eur_order, jpy_order, task_for


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqliteStore]:
    """A fresh SQLite store file."""
    store = SqliteStore(tmp_path / "ordertasks.sqlite")
    try:
        yield store
    finally:
        store.close()


def test_record_counts_once(sqlite_store: SqliteStore, make_context: Callable[..., EffectContext]) -> None:
    ctx = make_context(analytics=sqlite_store.analytics)
    task = task_for("record_analytics", "A1001", eur_order())
    first = record_analytics(task, ctx)
    assert first == {"counted": True, "created": True, "shard": shard_for("A1001", 8), "day": "2024-03-01"}
    assert record_analytics(task, ctx) == first | {"counted": False, "created": False}
    day = sqlite_store.analytics.daily_aggregate(date(2024, 3, 1))
    assert day.orders == 1 and day.revenue_minor == {"EUR": 138392}
    assert day.units == {"DESK-OAK": 1, "LAMP-01": 3, "CABLE-2M": 3}


def test_orders_in_different_shards_sum_up(sqlite_store: SqliteStore,
                                          make_context: Callable[..., EffectContext]) -> None:
    ctx = make_context(analytics=sqlite_store.analytics, analytics_shards=4)
    ids = [f"A{n}" for n in range(12)]
    assert len({shard_for(order_id, 4) for order_id in ids}) > 1
    for order_id in ids:
        record_analytics(task_for("record_analytics", order_id, eur_order()), ctx)
    record_analytics(task_for("record_analytics", "J1", jpy_order()), ctx)
    day = sqlite_store.analytics.daily_aggregate(date(2024, 3, 1))
    assert day.orders == 13
    assert day.revenue_minor == {"EUR": 12 * 138392, "JPY": 4460}
    assert day.units["LAMP-01"] == 36 and day.units["TEA-1"] == 3


def test_concurrent_deliveries_count_once(sqlite_store: SqliteStore,
                                          make_context: Callable[..., EffectContext]) -> None:
    ctx = make_context(analytics=sqlite_store.analytics)
    task = task_for("record_analytics", "A1001", eur_order())
    results: list[bool] = []
    start = threading.Barrier(20)

    def deliver() -> None:
        start.wait()
        results.append(record_analytics(task, ctx)["counted"])

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 19 + [True]
    assert sqlite_store.analytics.daily_aggregate(date(2024, 3, 1)).orders == 1
