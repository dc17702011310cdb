"""The outbox tables in SQLite: JSON as text, times as fixed-width UTC text (they sort as the
times do), and claims by lease, since SQLite has no row locks to skip.

A claim is a short ``BEGIN IMMEDIATE`` transaction that stamps up to ``limit`` waiting rows
with ``claimed_by`` (a fresh token) and ``claimed_until`` (now + the lease) and returns them;
the relay then works without holding SQLite's write lock (the shop's checkout keeps writing),
and a second short transaction marks the rows and clears the lease. A relay that dies leaves
its rows claimed until the lease runs out; then the next relay takes them. Several relays may
run, but SQLite serialises every writer: run one relay per database (the documented story).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from ordertasks.producer.outbox.ports import Claim, Database, Row, Sql
from ordertasks.producer.outbox.rows import (EFFECTS_TABLE, ORDERS_TABLE, WAITING_INDEX, OutboxRow,
                                            OwedEffect, sortable)
from ordertasks.producer.outbox.statements import WAITING, SharedOutbox, adding, settle
from ordertasks.producer.outbox.steps import Steps

DDL = [
    f"""CREATE TABLE IF NOT EXISTS {ORDERS_TABLE} (
    order_id TEXT PRIMARY KEY,
    snapshot TEXT NOT NULL,
    payment_id TEXT,
    created_at TEXT NOT NULL,
    relayed_at TEXT,
    refused TEXT,
    claimed_until TEXT,
    claimed_by TEXT
)""",
    f"""CREATE INDEX IF NOT EXISTS {WAITING_INDEX} ON {ORDERS_TABLE} (created_at)
    WHERE relayed_at IS NULL AND refused IS NULL""",
    f"""CREATE TABLE IF NOT EXISTS {EFFECTS_TABLE} (
    order_id TEXT NOT NULL REFERENCES {ORDERS_TABLE} (order_id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    task_name TEXT NOT NULL,
    schedule_time TEXT NOT NULL,
    audit_at TEXT,
    PRIMARY KEY (order_id, kind)
)""",
]
RELEASE = ", claimed_until = NULL, claimed_by = NULL"


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _loaded(text: str) -> dict[str, Any]:
    return dict(json.loads(text))


def release(sql: Sql, token: str) -> None:
    """Put the rows of claim ``token`` that were not settled back to waiting."""
    sql.execute(f"UPDATE {ORDERS_TABLE} SET claimed_until = NULL, claimed_by = NULL WHERE claimed_by = ?", (token,))


class SqliteOutbox(SharedOutbox):
    """``ShopOutbox`` in SQLite (see ``outbox.ports`` for the contract)."""

    dialect = "sqlite"
    DDL = DDL

    def adding(self, row: OutboxRow) -> Steps[dict[str, Any] | None]:
        """``add``'s statements (see ``outbox.steps``)."""
        return adding(row, sortable, _loaded)

    @contextmanager
    def claim(self, database: Database, limit: int, now: datetime, lease_seconds: float = 300.0) -> Iterator[Claim]:
        """Lease up to ``limit`` waiting rows whose lease (if any) ran out; mark and release them after."""
        token = uuid.uuid4().hex
        with database.transaction(immediate=True) as sql:
            found = sql.execute(
                f"UPDATE {ORDERS_TABLE} SET claimed_until = ?, claimed_by = ? WHERE order_id IN "
                f"(SELECT order_id FROM {ORDERS_TABLE} WHERE {WAITING} AND (claimed_until IS NULL OR claimed_until < ?) "
                "ORDER BY created_at LIMIT ?) RETURNING order_id, snapshot, payment_id, created_at",
                (sortable(now + timedelta(seconds=lease_seconds)), token, sortable(now), limit))
            claim = Claim(self._rows(sql, sorted(found, key=lambda r: (r[3], r[0]))))
        if not claim.rows:
            yield claim
            return
        try:
            yield claim
        except BaseException:
            with database.transaction(immediate=True) as sql:
                release(sql, token)
            raise
        with database.transaction(immediate=True) as sql:
            settle(sql, claim, sortable, RELEASE)
            release(sql, token)

    def _rows(self, sql: Sql, found: Sequence[Row]) -> list[OutboxRow]:
        if not found:
            return []
        marks = ", ".join("?" for _ in found)
        effects = sql.execute(f"SELECT order_id, kind, task_name, schedule_time, audit_at FROM {EFFECTS_TABLE} "
                              f"WHERE order_id IN ({marks}) ORDER BY order_id, kind", [r[0] for r in found])
        owed: dict[str, list[OwedEffect]] = {}
        for order_id, kind, name, due, audit_at in effects:
            owed.setdefault(order_id, []).append(OwedEffect(kind, name, datetime.fromisoformat(due), _time(audit_at)))
        return [OutboxRow(order_id, _loaded(snapshot), payment_id, datetime.fromisoformat(created),
                          tuple(owed.get(order_id, ()))) for order_id, snapshot, payment_id, created in found]
