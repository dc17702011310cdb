"""AnalyticsStore contract: a fact counts once, shards sum to the day's totals."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Any

import pytest

from ordertasks.handlers.ports import AnalyticsFact, AnalyticsStore, DailyAggregate, Stores
from tests.contract.clock import T0
from tests.contract.concurrency import all_at_once

DAY = T0.date()


@pytest.fixture
def store(stores: Stores) -> AnalyticsStore:
    """The AnalyticsStore of each backend."""
    return stores.analytics


def fact(order_id: str, revenue: int = 1999, currency: str = "EUR", units: dict[str, int] | None = None,
         day: date = DAY) -> AnalyticsFact:
    return AnalyticsFact(order_id, day, currency, revenue, units if units is not None else {"A.1": 2}, T0)


def test_store_implements_the_port(store: Any) -> None:
    assert isinstance(store, AnalyticsStore)


def test_twenty_concurrent_deliveries_count_once(store: Any) -> None:
    results = all_at_once(lambda _: store.record_order_fact(fact("o-1"), shard=3))
    assert Counter(results) == {True: 1, False: 19}
    assert store.daily_aggregate(DAY) == DailyAggregate(DAY, 1, {"EUR": 1999}, {"A.1": 2})
    assert store.get_fact("o-1") == fact("o-1")


def test_duplicate_on_another_shard_is_not_counted(store: Any) -> None:
    assert store.record_order_fact(fact("o-1"), shard=0) is True
    assert store.record_order_fact(fact("o-1"), shard=1) is False
    assert store.daily_aggregate(DAY).orders == 1


def test_shards_are_summed_per_currency_and_sku(store: Any) -> None:
    store.record_order_fact(fact("o-1", 1000, "EUR", {"A.1": 1, "b-2": 3}), shard=0)
    store.record_order_fact(fact("o-2", 2500, "EUR", {"A.1": 4}), shard=1)
    store.record_order_fact(fact("o-3", 700, "USD", {"c_3": 1}), shard=1)
    store.record_order_fact(fact("o-4", 99, "JPY", {}), shard=7)
    store.record_order_fact(fact("o-5", 5, "EUR", {"A.1": 1}, day=DAY + timedelta(days=1)), shard=0)
    assert store.daily_aggregate(DAY) == DailyAggregate(DAY, 4, {"EUR": 3500, "USD": 700, "JPY": 99},
                                                        {"A.1": 5, "b-2": 3, "c_3": 1})


def test_concurrent_different_orders_on_one_shard_all_count(store: Any) -> None:
    all_at_once(lambda i: store.record_order_fact(fact(f"o-{i}", 100), shard=i % 2), threads=10)
    assert store.daily_aggregate(DAY) == DailyAggregate(DAY, 10, {"EUR": 1000}, {"A.1": 20})


def test_empty_day_and_unknown_fact(store: Any) -> None:
    assert store.daily_aggregate(DAY) == DailyAggregate(DAY, 0, {}, {})
    assert store.get_fact("o-9") is None
