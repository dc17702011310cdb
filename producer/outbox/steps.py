"""Statements written once, run on either kind of connection.

A backend writes a unit of outbox work (``ShopOutbox.adding``) as a generator of ``Step``s:
it yields a statement, receives its rows, decides the next one, and returns the answer. The
same generator runs on a synchronous ``Sql`` (``run_steps``: ``OrderTasks.schedule(order,
transaction=conn)``) and on an asyncio ``AsyncSql`` (``run_steps_async``: a psycopg 3
``AsyncConnection`` handed to ``AsyncOrderTasks.schedule``), so the SQL lives in one place.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ordertasks.producer.outbox.ports import AsyncSql, Row, Sql

T = TypeVar("T")


@dataclass(frozen=True)
class Step:
    """One statement (``?`` placeholders) with its parameters; ``many``: one run per tuple in ``params``."""

    statement: str
    params: Sequence[Any] = ()
    many: bool = False

    def run(self, sql: Sql) -> list[Row]:
        """On a synchronous connection; the rows (``[]`` for ``many``)."""
        if self.many:
            sql.executemany(self.statement, self.params)
            return []
        return sql.execute(self.statement, self.params)

    async def run_async(self, sql: AsyncSql) -> list[Row]:
        """On an asyncio connection; the rows (``[]`` for ``many``)."""
        if self.many:
            await sql.executemany(self.statement, self.params)
            return []
        return await sql.execute(self.statement, self.params)


Steps = Generator[Step, list[Row], T]


@dataclass(frozen=True)
class Done(Generic[T]):
    """What a finished ``Steps`` returned."""

    value: T


def _advance(steps: Steps[T], rows: list[Row] | None) -> Step | Done[T]:
    try:
        return steps.send(rows)     # type: ignore[arg-type]  # None starts the generator
    except StopIteration as finished:
        return Done(finished.value)


def run_steps(sql: Sql, steps: Steps[T]) -> T:
    """Run ``steps`` on ``sql``; what they return."""
    step = _advance(steps, None)
    while isinstance(step, Step):
        step = _advance(steps, step.run(sql))
    return step.value


async def run_steps_async(sql: AsyncSql, steps: Steps[T]) -> T:
    """Run ``steps`` on ``sql``, awaiting each statement; what they return."""
    step = _advance(steps, None)
    while isinstance(step, Step):
        step = _advance(steps, await step.run_async(sql))
    return step.value
