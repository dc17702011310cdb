"""Rules shared by every backend's operator queries: filter matching and page cursors.

A failed-task page is ordered by ``(last_failed_at, id)`` descending. Its cursor is the
last entry's pair, encoded as URL-safe base64 JSON, so the next page starts strictly after
it in every backend (SQL row comparison, Firestore ``start_after``, a sort in memory) and a
cursor survives a restart of the console.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from ordertasks.handlers.ports import FailedFilter, FailedTask, OrderRecord


def failed_matches(task: FailedTask, where: FailedFilter) -> bool:
    """True when ``task`` is one ``where`` means."""
    if any(wanted is not None and wanted != getattr(task, name)
           for name, wanted in (("status", where.status), ("kind", where.kind), ("error_type", where.error_type))):
        return False
    if where.failed_since is not None and task.last_failed_at < where.failed_since:
        return False
    return where.failed_before is None or task.last_failed_at < where.failed_before


def failed_cursor(task: FailedTask) -> str:
    """The cursor that continues a page after ``task``."""
    raw = json.dumps([task.last_failed_at.isoformat(), task.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_failed_cursor(cursor: str) -> tuple[datetime, str]:
    """``(last_failed_at, id)`` of a cursor; ``ValueError`` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, failed_id = json.loads(raw)
        return datetime.fromisoformat(moment), str(failed_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError(f"page cursor {cursor[:40]!r} is not valid; start again from the first page") from exc


def after_cursor(task: FailedTask, position: tuple[datetime, str] | None) -> bool:
    """True when ``task`` comes after ``position`` in newest-first order."""
    return position is None or (task.last_failed_at, task.id) < position


def customer_email(order: OrderRecord) -> Any:
    """The customer email in an order's snapshot (``None`` when it has none)."""
    customer = order.snapshot.get("customer") or {}
    return customer.get("email") if isinstance(customer, dict) else None
