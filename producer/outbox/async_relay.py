"""``AsyncOrderTasks.relay()``: the relay of ``outbox.relay`` for asyncio code.

The same claims and steps, so the same story: each order exactly once in effect, a relay
that dies (or is cancelled) anywhere leaves its rows waiting and the next one repeats the
steps harmlessly, and any number of relays share a PostgreSQL outbox through
``FOR UPDATE SKIP LOCKED``. What differs is where each part waits:

- **the database part** (open the relay's connection, claim a batch with its rows, mark them)
  is the synchronous backends' own code over the relay's own psycopg 3 or sqlite3 connection,
  each step on a worker thread (``asyncio.to_thread``): a claim is entered on one worker
  thread and left on another, never used by two at once;
- **Cloud Tasks**: every row of a claim is scheduled through ``AsyncOrderTasks.schedule``,
  concurrently on the event loop (gRPC aio, no thread; its store steps are ``to_thread`` as
  ever).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from ordertasks.handlers.errors import DependencyUnavailable
from ordertasks.producer.outbox.backends import outbox_for
from ordertasks.producer.outbox.ports import Claim
from ordertasks.producer.outbox.relay import REFUSABLE, RelayBase, RelayConnection, RelaySummary, finished
from ordertasks.producer.outbox.rows import OutboxRow

if TYPE_CHECKING:
    from ordertasks.producer.async_library import AsyncOrderTasks

T = TypeVar("T")
AsyncSchedule = Callable[..., Awaitable[Sequence[Any]]]     # AsyncOrderTasks.schedule


@asynccontextmanager
async def in_thread(context: AbstractContextManager[T]) -> AsyncIterator[T]:
    """A synchronous context manager whose enter and exit each run on a worker thread."""
    value = await asyncio.to_thread(context.__enter__)
    try:
        yield value
    except BaseException as exc:
        if not await asyncio.to_thread(context.__exit__, type(exc), exc, exc.__traceback__):
            raise
    else:
        await asyncio.to_thread(context.__exit__, None, None, None)


class AsyncRelay(RelayBase):
    """Claims waiting rows batch by batch and relays each through an async ``schedule``."""

    schedule: AsyncSchedule

    async def run(self, limit: int = 500) -> RelaySummary:
        """Relay up to ``limit`` orders, oldest first; stop early when none are waiting."""
        outcomes: Counter[str] = Counter()
        more = True
        while more and (done := finished(outcomes)) < limit:
            more = await self._batch(limit - done, outcomes)
        return RelaySummary.of(outcomes)

    async def _batch(self, remaining: int, outcomes: Counter[str]) -> bool:
        """Claim the next rows and relay them all at once; whether there were any."""
        async with in_thread(self.next_claim(remaining)) as claim:
            for states in await asyncio.gather(*(self._relay(row, claim) for row in claim.rows)):
                outcomes.update(states)
        return bool(claim.rows)

    async def _relay(self, row: OutboxRow, claim: Claim) -> list[str]:
        """One row: ``schedule`` it, then report it relayed (or refused, if it never can be)."""
        try:
            results = await self.schedule(row.order(), payment_id=row.payment_id)
        except REFUSABLE as exc:
            return self.refused(row, claim, exc)
        return self.relayed(row, claim, results)


class AsyncRelayer:
    """``AsyncOrderTasks.relay()``: one relay at a time per object, over its own connection."""

    def __init__(self, tasks: "AsyncOrderTasks", url: str, batch: int = 20) -> None:
        self.tasks, self.batch = tasks, batch
        self.connection = RelayConnection(url)
        self._lock = asyncio.Lock()

    async def run(self, limit: int = 500) -> RelaySummary:
        """Relay up to ``limit`` orders; a caller that finds a relay running waits for it, then
        runs its own (so a row committed meanwhile is never left behind)."""
        async with self._lock:
            database = await asyncio.to_thread(self.connection.open)
            relay = AsyncRelay(outbox_for(database.dialect), database, self.tasks.schedule, self.tasks.records.clock,
                               self.batch)
            try:
                return await relay.run(limit)
            except DependencyUnavailable:
                await asyncio.to_thread(self.connection.drop)     # the next run connects afresh
                raise

    async def close(self) -> None:
        """Close the connection."""
        async with self._lock:
            await asyncio.to_thread(self.connection.drop)
