"""The analytics fact and its shard: pure conversion, no store needed."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date

from ordertasks.handlers.kinds.record_analytics import order_fact, shard_for
from ordertasks.handlers.contract import OrderSnapshot
from tests.effects.orders import FixedClock, eur_order, jpy_order, task_for


def test_fact_has_utc_day_minor_units_and_units_per_sku() -> None:
    task = task_for("record_analytics", "A1001", eur_order())
    fact = order_fact("A1001", task.data, FixedClock().now())
    assert fact.order_id == "A1001" and fact.currency == "EUR"
    assert fact.day == date(2024, 3, 1)
    assert fact.revenue_minor == 138392
    assert fact.units == {"DESK-OAK": 1, "LAMP-01": 3, "CABLE-2M": 3}
    assert fact.recorded_at == FixedClock().now()


def test_jpy_has_no_minor_unit_and_day_is_utc_not_local() -> None:
    # Placed 2024-03-01 23:30 in Tokyo, which is 14:30 UTC the same day.
    fact = order_fact("J1", task_for("record_analytics", "J1", jpy_order()).data, FixedClock().now())
    assert fact.revenue_minor == 4460 and fact.currency == "JPY"
    assert fact.day == date(2024, 3, 1)


def test_day_rolls_over_in_utc() -> None:
    data = eur_order().model_dump(mode="json")
    data["placed_at"] = "2024-03-02T00:30:00+02:00"          # 2024-03-01 22:30 UTC
    task = task_for("record_analytics", "A2", OrderSnapshot.model_validate(data))
    assert order_fact("A2", task.data, FixedClock().now()).day == date(2024, 3, 1)


def test_shard_is_in_range_and_spreads() -> None:
    shards = {shard_for(f"order-{n}", 8) for n in range(200)}
    assert shards == set(range(8))
    assert all(shard_for("A1001", n) < n for n in (1, 2, 8, 16))


def test_shard_is_stable_across_processes() -> None:
    # Python's hash() is salted per process; the shard must not be.
    code = "from handlers.kinds.record_analytics import shard_for; print(shard_for('A1001', 8), shard_for('B-77', 16))"
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env=os.environ | {"PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert runs == {f"{shard_for('A1001', 8)} {shard_for('B-77', 16)}\n"}
