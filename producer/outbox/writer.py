"""``schedule(order, transaction=conn)``: the order and what it owes, as rows of the caller's
transaction. Nothing reaches Cloud Tasks or our store here: the relay moves the rows once the
transaction has committed, and a rollback takes them with it.

``schedule_in`` is ``OrderTasks``'; ``schedule_in_async`` is ``AsyncOrderTasks``', over the same
rows and statements: a SQLAlchemy ``AsyncConnection``/``AsyncSession`` through its ``run_sync``
(SQLAlchemy's own bridge: the synchronous writer runs in a greenlet on the event loop, no
thread), a psycopg 3 ``AsyncConnection`` through ``await cursor.execute``
(``outbox.steps``), and a synchronous connection handed to async code as ``schedule_in`` would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ordertasks.handlers.contract import OrderSnapshot
from ordertasks.handlers.ports import OutboxEntry, TaskState
from ordertasks.producer.library import OrderConflict, OrderRecords, TaskResult, order_parts
from ordertasks.producer.outbox.backends import outbox_for
from ordertasks.producer.outbox.connections import alchemy_asyncio, asyncio_family, borrowed, borrowed_async
from ordertasks.producer.outbox.rows import OutboxRow, OwedEffect
from ordertasks.producer.outbox.steps import run_steps_async


@dataclass(frozen=True)
class OutboxOrder:
    """An order as ``schedule(order, transaction=…)`` writes it: its row and what it owes."""

    row: OutboxRow
    snapshot: OrderSnapshot
    entries: list[OutboxEntry]

    @classmethod
    def of(cls, records: OrderRecords, order: Mapping[str, Any] | BaseModel,
           payment_id: str | None) -> "OutboxOrder":
        """Validate the order (``InvalidPayload``) and plan its effects, as ``schedule`` would."""
        order_id, snapshot = order_parts(order)
        now = records.clock.now()
        entries = records.outbox(order_id, snapshot, now)
        row = OutboxRow(order_id, snapshot.model_dump(mode="json"), payment_id, now,
                        tuple(OwedEffect(e.kind, e.task_name, e.schedule_time, e.audit_at) for e in entries))
        return cls(row, snapshot, entries)

    def results(self, stored: dict[str, Any] | None) -> list[TaskResult]:
        """One ``pending`` result per kind, once written; ``OrderConflict`` when the outbox
        already held this order id (``stored``) with other content."""
        if stored is not None and OrderSnapshot.model_validate(stored) != self.snapshot:
            raise OrderConflict(f"order {self.row.order_id!r} is already in the outbox with other content; "
                                "a new order needs a new order id")
        return [TaskResult(e.kind, e.task_name, TaskState.PENDING) for e in self.entries]


def add_through(transaction: Any, row: OutboxRow) -> dict[str, Any] | None:
    """Write ``row`` through the caller's synchronous ``transaction`` (``ShopOutbox.add``)."""
    sql = borrowed(transaction)
    return outbox_for(sql.dialect).add(sql, row)


async def add_async(transaction: Any, row: OutboxRow) -> dict[str, Any] | None:
    """Write ``row`` through the caller's ``transaction``, asyncio or not (see the module docstring)."""
    family = asyncio_family(transaction)
    if family == "sqlalchemy":
        return await alchemy_asyncio(transaction).run_sync(add_through, row)    # type: ignore[no-any-return]
    if family == "psycopg":
        sql = borrowed_async(transaction)
        return await run_steps_async(sql, outbox_for(sql.dialect).adding(row))
    return add_through(transaction, row)


def schedule_in(records: OrderRecords, order: Mapping[str, Any] | BaseModel, transaction: Any,
                payment_id: str | None = None) -> list[TaskResult]:
    """Write the order's outbox rows through ``transaction``; one ``pending`` result per kind.

    The order is validated first (``InvalidPayload``); an order id already in the outbox with
    other content raises ``OrderConflict``, with the same content it changes nothing.
    """
    planned = OutboxOrder.of(records, order, payment_id)
    return planned.results(add_through(transaction, planned.row))


async def schedule_in_async(records: OrderRecords, order: Mapping[str, Any] | BaseModel, transaction: Any,
                            payment_id: str | None = None) -> list[TaskResult]:
    """``schedule_in`` for ``AsyncOrderTasks``: the same rows, answers and errors, awaited."""
    planned = OutboxOrder.of(records, order, payment_id)
    return planned.results(await add_async(transaction, planned.row))
