"""The outbox tables in PostgreSQL: ``jsonb`` snapshots, ``timestamptz`` times, and claims by
row lock (``SELECT … FOR UPDATE SKIP LOCKED``), so any number of relays share the work.

A claim is one transaction on the relay's own connection: the rows it selected stay locked
while the relay stores them and creates their tasks, and are marked in the same transaction.
A relay that dies loses its locks with its connection, and the rows are waiting again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from ordertasks.producer.outbox.ports import Claim, Database, Row, Sql
from ordertasks.producer.outbox.rows import (EFFECTS_TABLE, ORDERS_TABLE, WAITING_INDEX, OutboxRow,
                                            OwedEffect, utc)
from ordertasks.producer.outbox.statements import WAITING, SharedOutbox, adding, settle
from ordertasks.producer.outbox.steps import Steps

DDL = [
    f"""CREATE TABLE IF NOT EXISTS {ORDERS_TABLE} (
    order_id varchar(64) PRIMARY KEY,
    snapshot jsonb NOT NULL,
    payment_id text,
    created_at timestamptz NOT NULL,
    relayed_at timestamptz,
    refused text
)""",
    f"""CREATE INDEX IF NOT EXISTS {WAITING_INDEX} ON {ORDERS_TABLE} (created_at)
    WHERE relayed_at IS NULL AND refused IS NULL""",
    f"""CREATE TABLE IF NOT EXISTS {EFFECTS_TABLE} (
    order_id varchar(64) NOT NULL REFERENCES {ORDERS_TABLE} (order_id) ON DELETE CASCADE,
    kind text NOT NULL,
    task_name text NOT NULL,
    schedule_time timestamptz NOT NULL,
    audit_at timestamptz,
    PRIMARY KEY (order_id, kind)
)""",
]


def _snapshot(value: Any) -> dict[str, Any]:
    """A ``jsonb`` value as the driver handed it: psycopg loads it, others may not."""
    loaded = json.loads(value) if isinstance(value, (str, bytes)) else value
    return dict(loaded)


class PostgresOutbox(SharedOutbox):
    """``ShopOutbox`` in PostgreSQL (see ``outbox.ports`` for the contract)."""

    dialect = "postgresql"
    DDL = DDL

    def adding(self, row: OutboxRow) -> Steps[dict[str, Any] | None]:
        """``add``'s statements (see ``outbox.steps``)."""
        return adding(row, utc, _snapshot, "CAST(? AS jsonb)")

    @contextmanager
    def claim(self, database: Database, limit: int, now: datetime, lease_seconds: float = 300.0) -> Iterator[Claim]:
        """Lock up to ``limit`` waiting rows (skipping rows other relays hold) for this transaction."""
        with database.transaction() as sql:
            found = sql.execute(f"SELECT order_id, snapshot, payment_id, created_at FROM {ORDERS_TABLE} "
                                f"WHERE {WAITING} ORDER BY created_at LIMIT ? FOR UPDATE SKIP LOCKED", (limit,))
            claim = Claim(self._rows(sql, found))
            yield claim
            settle(sql, claim)

    def _rows(self, sql: Sql, found: Sequence[Row]) -> list[OutboxRow]:
        if not found:
            return []
        effects = sql.execute(f"SELECT order_id, kind, task_name, schedule_time, audit_at FROM {EFFECTS_TABLE} "
                              "WHERE order_id = ANY(?) ORDER BY order_id, kind", ([r[0] for r in found],))
        owed: dict[str, list[OwedEffect]] = {}
        for order_id, kind, name, due, audit_at in effects:
            owed.setdefault(order_id, []).append(OwedEffect(kind, name, utc(due), audit_at and utc(audit_at)))
        return [OutboxRow(order_id, _snapshot(snapshot), payment_id, utc(created), tuple(owed.get(order_id, ())))
                for order_id, snapshot, payment_id, created in found]
