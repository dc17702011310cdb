"""The statements both dialects share: adding an order, what a waiting row is, a claim's outcome,
the counts."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ordertasks.producer.outbox.ports import Claim, Sql
from ordertasks.producer.outbox.rows import EFFECTS_TABLE, ORDERS_TABLE, OutboxCounts, OutboxRow
from ordertasks.producer.outbox.steps import Step, Steps, run_steps

WAITING = "relayed_at IS NULL AND refused IS NULL"


def adding(row: OutboxRow, stamp: Callable[[datetime], Any], loaded: Callable[[Any], dict[str, Any]],
           snapshot: str = "?") -> Steps[dict[str, Any] | None]:
    """``ShopOutbox.adding``: insert the order unless its id is there (then return the stored
    snapshot, as ``loaded`` reads it), then its effects. ``stamp`` writes a time, ``snapshot``
    is the JSON text's placeholder (PostgreSQL casts it to ``jsonb``)."""
    inserted = yield Step(f"INSERT INTO {ORDERS_TABLE} (order_id, snapshot, payment_id, created_at) VALUES "
                          f"(?, {snapshot}, ?, ?) ON CONFLICT (order_id) DO NOTHING RETURNING order_id",
                          (row.order_id, json.dumps(row.snapshot), row.payment_id, stamp(row.created_at)))
    if not inserted:
        stored = yield Step(f"SELECT snapshot FROM {ORDERS_TABLE} WHERE order_id = ?", (row.order_id,))
        return loaded(stored[0][0])
    yield Step(f"INSERT INTO {EFFECTS_TABLE} (order_id, kind, task_name, schedule_time, audit_at) "
               "VALUES (?, ?, ?, ?, ?)",
               [(row.order_id, e.kind, e.task_name, stamp(e.schedule_time), e.audit_at and stamp(e.audit_at))
                for e in row.effects], many=True)
    return None


def settle(sql: Sql, claim: Claim, stamp: Callable[[datetime], Any] = lambda moment: moment, release: str = "") -> None:
    """Write a claim's outcome: ``relayed_at`` (as ``stamp`` writes a time) and ``refused``;
    ``release`` (SQLite's lease release) is appended to each ``SET``."""
    if claim.relayed_ids:
        sql.executemany(f"UPDATE {ORDERS_TABLE} SET relayed_at = ?{release} WHERE order_id = ?",
                        [(stamp(when), order_id) for order_id, when in claim.relayed_ids.items()])
    if claim.refusals:
        sql.executemany(f"UPDATE {ORDERS_TABLE} SET refused = ?{release} WHERE order_id = ?",
                        [(reason, order_id) for order_id, reason in claim.refusals.items()])


def counted(sql: Sql) -> OutboxCounts:
    """``OutboxCounts`` in one scan."""
    waiting, relayed, refused = sql.execute(
        f"SELECT COALESCE(SUM(CASE WHEN {WAITING} THEN 1 ELSE 0 END), 0), COUNT(relayed_at), COUNT(refused) "
        f"FROM {ORDERS_TABLE}")[0]
    return OutboxCounts(int(waiting), int(relayed), int(refused))


class SharedOutbox:
    """What both ``ShopOutbox`` backends do alike: their ``DDL``, ``add`` as their ``adding``
    steps, the counts."""

    DDL: list[str] = []

    def ddl(self) -> list[str]:
        """The tables and the relay's partial index, ``IF NOT EXISTS``."""
        return list(self.DDL)

    def adding(self, row: OutboxRow) -> Steps[dict[str, Any] | None]:
        """``add``'s statements (see ``outbox.steps``): the backend's."""
        raise NotImplementedError

    def add(self, sql: Sql, row: OutboxRow) -> dict[str, Any] | None:
        """Insert in the caller's transaction; an existing order id is left alone."""
        return run_steps(sql, self.adding(row))

    def counts(self, sql: Sql) -> OutboxCounts:
        """Waiting, relayed and refused orders."""
        return counted(sql)
