"""What the transactional outbox holds: one row per order, one per effect it owes.

    ordertasks_outbox            order_id (key), snapshot (JSON), payment_id, created_at,
                                 relayed_at (NULL until relayed), refused (why it never can be),
                                 SQLite only: claimed_until, claimed_by (the relay's lease)
    ordertasks_outbox_effects    order_id, kind, task_name, schedule_time, audit_at: what the
                                 order owes, as ``schedule`` planned it (deterministic names)

A row is *waiting* while ``relayed_at`` and ``refused`` are both NULL; the partial index
``ordertasks_outbox_waiting`` on ``created_at`` keeps the relay's scan to those.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ORDERS_TABLE = "ordertasks_outbox"
EFFECTS_TABLE = "ordertasks_outbox_effects"
WAITING_INDEX = "ordertasks_outbox_waiting"


@dataclass(frozen=True)
class OwedEffect:
    """One task an outboxed order owes: its kind, deterministic name and due time."""

    kind: str
    task_name: str
    schedule_time: datetime
    audit_at: datetime | None = None


@dataclass(frozen=True)
class OutboxRow:
    """One order in the outbox, as ``schedule(order, transaction=…)`` wrote it."""

    order_id: str
    snapshot: dict[str, Any]
    payment_id: str | None
    created_at: datetime
    effects: tuple[OwedEffect, ...] = ()

    def order(self) -> dict[str, Any]:
        """The order as ``OrderTasks.schedule`` takes it: ``order_id`` plus the snapshot."""
        return {"order_id": self.order_id, **self.snapshot}


@dataclass(frozen=True)
class OutboxCounts:
    """How many orders the outbox holds in each state."""

    waiting: int
    relayed: int
    refused: int


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC (a naive time is taken as UTC, as SQLite hands it back)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def sortable(moment: datetime) -> str:
    """A fixed-width UTC text that sorts as the time does (SQLite has no timestamp type)."""
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
