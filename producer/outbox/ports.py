"""The ports of the transactional outbox: SQL on a connection, and the outbox table.

``Sql`` is one open connection in a transaction: the shop's (``schedule(order, transaction=…)``
borrows it and never commits) or the relay's own (``Database.transaction()``); ``AsyncSql`` is
the same on an asyncio connection (``AsyncOrderTasks.schedule``). ``ShopOutbox``
is the outbox table in one SQL dialect (``outbox.postgres``, ``outbox.sqlite``); the contract
tests (``tests/contract/test_shop_outbox.py``) run every backend through the same checks.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ordertasks.handlers.errors import OrderTasksError
from ordertasks.producer.outbox.rows import OutboxCounts, OutboxRow

Row = tuple[Any, ...]


class UnsupportedTransaction(OrderTasksError, TypeError):
    """``transaction=`` is not an open connection or session ordertasks can write through, or
    it is not inside a transaction; the message says what to pass."""


class Sql(Protocol):
    """One connection, inside a transaction someone else ends."""

    dialect: str        # "postgresql" or "sqlite"

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement (``?`` placeholders, whatever the driver's style); the rows it
        returned (``[]`` for none). Driver errors propagate unchanged."""
        ...

    def executemany(self, statement: str, params: Sequence[Sequence[Any]]) -> None:
        """Run one statement per parameter tuple."""
        ...


class AsyncSql(Protocol):
    """``Sql`` on an asyncio connection (psycopg 3's ``AsyncConnection``): the same promises, awaited."""

    dialect: str

    async def execute(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement; the rows it returned (``[]`` for none)."""
        ...

    async def executemany(self, statement: str, params: Sequence[Sequence[Any]]) -> None:
        """Run one statement per parameter tuple."""
        ...


class Database(Protocol):
    """A connection the relay owns (``outbox.connections.open_database``)."""

    dialect: str

    def transaction(self, immediate: bool = False) -> AbstractContextManager[Sql]:
        """A transaction: committed when the block ends, rolled back when it raises.
        ``immediate``: take the write lock at once (SQLite's ``BEGIN IMMEDIATE``)."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


@dataclass
class Claim:
    """Rows one relay holds: no other relay gets them until the claim ends. The relay reports
    each row ``relayed`` or ``refused``; a row it reports neither goes back to waiting."""

    rows: list[OutboxRow]
    relayed_ids: dict[str, datetime] = field(default_factory=dict)
    refusals: dict[str, str] = field(default_factory=dict)

    def relayed(self, order_id: str, now: datetime) -> None:
        """The row's order is in our store and its tasks were created (or are reconcile's)."""
        self.relayed_ids[order_id] = now

    def refused(self, order_id: str, reason: str) -> None:
        """The row can never be scheduled (``reason`` says why); it stays, out of the scan."""
        self.refusals[order_id] = reason[:1000]


class ShopOutbox(Protocol):
    """The outbox tables in the shop's database, in one SQL dialect.

    Promises every backend keeps:

    - ``ddl()`` is idempotent (``CREATE … IF NOT EXISTS``): running it twice changes nothing.
    - ``add`` writes only through the ``Sql`` it is given, so the row lives or dies with the
      caller's transaction; it never commits, and an order id already there is left as it is
      (its stored snapshot is returned, for the caller to compare).
    - ``claim`` hands each waiting row (with its effects, by kind) to one relay at a time, oldest
      first, at most ``limit``;
      when the claim ends, rows reported ``relayed`` get ``relayed_at``, ``refused`` ones their
      reason, and the rest are waiting again. A relay that dies holding a claim loses it:
      PostgreSQL at once (row locks, ``FOR UPDATE SKIP LOCKED``), SQLite when its lease
      (``lease_seconds``) runs out.
    - ``counts`` counts waiting, relayed and refused orders.
    """

    dialect: str

    def ddl(self) -> list[str]:
        """The statements that create the tables and the relay's index."""
        ...

    def add(self, sql: Sql, row: OutboxRow) -> dict[str, Any] | None:
        """Insert ``row`` and its effects; ``None`` when inserted, else the
        snapshot already stored under its order id (nothing written)."""
        ...

    def adding(self, row: OutboxRow) -> Generator[Any, list[Row], dict[str, Any] | None]:
        """``add`` as ``outbox.steps.Step``s, for a connection of either kind (``add`` runs them
        on a ``Sql``; ``run_steps_async`` on an ``AsyncSql``)."""
        ...

    def claim(self, database: Database, limit: int, now: datetime,
              lease_seconds: float = 300.0) -> AbstractContextManager[Claim]:
        """Claim up to ``limit`` waiting rows for one relay (see the class docstring)."""
        ...

    def counts(self, sql: Sql) -> OutboxCounts:
        """How many orders are waiting, relayed and refused."""
        ...
