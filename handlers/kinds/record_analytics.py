"""Analytics: one fact per order, added to a sharded daily aggregate exactly once.

The store does the once-only part (fact and shard updated in one transaction, only when the
fact is new); this module turns the task into the fact and picks the shard.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import date, datetime, timezone
from typing import Any

from pydantic import Field

from ordertasks.handlers.contract import ContractModel, Money, OrderSnapshot, Task, minor_units
from ordertasks.handlers.kind import EffectContext, FarEnds, Kind, Recorded
from ordertasks.handlers.ports import AnalyticsFact


class AnalyticsItem(ContractModel):
    """A line as analytics sees it: no names, no customer."""

    sku: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    quantity: int = Field(gt=0, le=10_000)
    unit_price: Money


class AnalyticsData(ContractModel):
    """What the analytics fact needs: day, money, units per SKU. No personal data."""

    placed_at: datetime
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    total: Money
    items: tuple[AnalyticsItem, ...] = Field(min_length=1, max_length=200)


def analytics_data(order: OrderSnapshot) -> dict[str, Any]:
    """The projection: day, currency, total and the lines' SKU, quantity and price."""
    items = [{"sku": i.sku, "quantity": i.quantity, "unit_price": i.unit_price} for i in order.items]
    return {"placed_at": order.placed_at, "currency": order.totals.currency, "total": order.totals.total,
            "items": items}


def shard_for(order_id: str, shards: int) -> int:
    """Stable shard of ``order_id`` in ``0..shards-1``.

    sha256, not ``hash()``: Python salts string hashes per process, and every delivery of an
    order must land on the same shard document.
    """
    digest = hashlib.sha256(order_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def order_fact(order_id: str, data: AnalyticsData, recorded_at: datetime) -> AnalyticsFact:
    """The fact analytics counts: UTC day, total in minor units, units per SKU."""
    units: Counter[str] = Counter()
    for item in data.items:
        units[item.sku] += item.quantity
    return AnalyticsFact(order_id=order_id, day=_utc_day(data.placed_at), currency=data.currency,
                         revenue_minor=minor_units(data.total, data.currency), units=dict(units),
                         recorded_at=recorded_at)


def _utc_day(moment: datetime) -> date:
    # A naive timestamp from the producer is taken as UTC rather than the server's local zone.
    aware = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return aware.astimezone(timezone.utc).date()


def record_analytics(task: Task, ctx: EffectContext) -> dict[str, Any]:
    """Record the order's fact; result ``{"counted": bool, "created": bool, "shard": k, "day": "YYYY-MM-DD"}``."""
    fact = order_fact(task.order_id, task.data, ctx.clock.now())
    shard = shard_for(task.order_id, ctx.analytics_shards)
    counted = ctx.analytics.record_order_fact(fact, shard)
    return {"counted": counted, "created": counted, "shard": shard, "day": fact.day.isoformat()}


class FactRecord:
    """The order's fact document is the done mark: it is created with the shard, atomically."""

    def find(self, order_id: str, ends: FarEnds) -> Recorded | None:
        """The order's fact, when it exists: ``{"counted": True, "day": ...}``."""
        fact = ends.analytics.get_fact(order_id)
        return None if fact is None else Recorded(fact.recorded_at, {"counted": True, "day": fact.day.isoformat()})

    def count(self, ends: FarEnds, since: datetime | None = None) -> int:
        """Facts recorded (an aggregation)."""
        return ends.analytics.count_facts(since)


# One transaction creates the fact (refused if it exists) and adds it to its shard: create-once.
KIND = Kind(perform=record_analytics, model=AnalyticsData, project=analytics_data, create_once=True,
            done_at=FactRecord())
