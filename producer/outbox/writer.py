"""``schedule(order, transaction=conn)``: the order and what it owes, as rows of the caller's
transaction. Nothing reaches Cloud Tasks or our store here: the relay moves the rows once the
transaction has committed, and a rollback takes them with it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from ordertasks.handlers.contract import OrderSnapshot
from ordertasks.handlers.ports import TaskState
from ordertasks.producer.library import OrderConflict, OrderRecords, TaskResult, order_parts
from ordertasks.producer.outbox.backends import outbox_for
from ordertasks.producer.outbox.connections import borrowed
from ordertasks.producer.outbox.rows import OutboxRow, OwedEffect


def schedule_in(records: OrderRecords, order: Mapping[str, Any] | BaseModel, transaction: Any,
                payment_id: str | None = None) -> list[TaskResult]:
    """Write the order's outbox rows through ``transaction``; one ``pending`` result per kind.

    The order is validated first (``InvalidPayload``); an order id already in the outbox with
    other content raises ``OrderConflict``, with the same content it changes nothing.
    """
    order_id, snapshot = order_parts(order)
    now = records.clock.now()
    entries = records.outbox(order_id, snapshot, now)
    row = OutboxRow(order_id, snapshot.model_dump(mode="json"), payment_id, now,
                    tuple(OwedEffect(e.kind, e.task_name, e.schedule_time, e.audit_at) for e in entries))
    sql = borrowed(transaction)
    stored = outbox_for(sql.dialect).add(sql, row)
    if stored is not None and OrderSnapshot.model_validate(stored) != snapshot:
        raise OrderConflict(f"order {order_id!r} is already in the outbox with other content; "
                            "a new order needs a new order id")
    return [TaskResult(e.kind, e.task_name, TaskState.PENDING) for e in entries]
