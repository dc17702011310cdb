"""The statements both dialects share: what a waiting row is, a claim's outcome, the counts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ordertasks.producer.outbox.ports import Claim, Sql
from ordertasks.producer.outbox.rows import ORDERS_TABLE, OutboxCounts

WAITING = "relayed_at IS NULL AND refused IS NULL"


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
