"""The relay: committed outbox rows to our store and Cloud Tasks, each order once.

Relaying a row is exactly what ``OrderTasks.schedule(order)`` does (store the order and its
ledger idempotently, then create every task under its deterministic name, ALREADY_EXISTS
counting as success), followed by marking the row relayed. A relay that dies anywhere in
between leaves the row waiting (PostgreSQL: its claim's transaction never commits; SQLite:
its lease runs out), and the next relay repeats those steps harmlessly. A row whose order
can never be scheduled (its id is in our store with other content) is marked ``refused``
with the reason, and left out of every later scan.

Tasks Cloud Tasks did not take (an outage) are ``pending`` in our store, exactly as after a
plain ``schedule``: the row is relayed, and ``reconcile`` creates them later.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, suppress
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ordertasks.handlers.config import Settings, expand
from ordertasks.handlers.errors import ConfigurationError, DependencyUnavailable, InvalidPayload
from ordertasks.handlers.ports import Clock
from ordertasks.producer.outbox.backends import outbox_for
from ordertasks.producer.outbox.connections import open_database
from ordertasks.producer.outbox.ports import Claim, Database, ShopOutbox
from ordertasks.producer.outbox.rows import OutboxRow

if TYPE_CHECKING:
    from ordertasks.producer.library import OrderTasks

log = logging.getLogger("ordertasks.outbox")
Schedule = Callable[..., Sequence[Any]]     # OrderTasks.schedule: (order, *, payment_id) -> TaskResults
REFUSED = "refused"
REFUSABLE = (InvalidPayload, ValueError)     # the order can never be scheduled (OrderConflict is a ValueError)
NO_URL = ("no outbox database is named: set ORDERTASKS_OUTBOX_URL (or the catalog's [outbox] database_url), "
          "or pass --database-url")


@dataclass(frozen=True)
class RelaySummary:
    """What one relay run did: orders relayed and refused, and their tasks by state."""

    relayed: int = 0
    refused: int = 0
    created: int = 0
    exists: int = 0
    pending: int = 0
    cancelled: int = 0

    @classmethod
    def of(cls, outcomes: Counter[str]) -> "RelaySummary":
        """From counted outcomes: ``relayed``/``refused`` per order, a task state per task."""
        return cls(**{name: outcomes[name] for name in cls.__dataclass_fields__})

    def as_dict(self) -> dict[str, int]:
        """JSON-ready."""
        return asdict(self)

    def line(self) -> str:
        """One line for a terminal or a log."""
        return (f"relay: {self.relayed} order(s) relayed ({self.created} task(s) created, {self.exists} already there, "
                f"{self.pending} pending for reconcile, {self.cancelled} cancelled), {self.refused} refused")


class RelayBase:
    """What the synchronous ``Relay`` and ``AsyncRelay`` (``outbox.async_relay``) share: the next
    claim, and a relayed or refused row reported to it."""

    def __init__(self, outbox: ShopOutbox, database: Database, schedule: Callable[..., Any], clock: Clock,
                 batch: int = 20, workers: int = 4, lease_seconds: float = 300.0) -> None:
        self.outbox, self.database, self.schedule, self.clock = outbox, database, schedule, clock
        self.batch, self.workers, self.lease_seconds = batch, workers, lease_seconds

    def next_claim(self, remaining: int) -> AbstractContextManager[Claim]:
        """A claim of the next waiting rows, at most a batch and ``remaining``."""
        return self.outbox.claim(self.database, min(self.batch, remaining), self.clock.now(), self.lease_seconds)

    def relayed(self, row: OutboxRow, claim: Claim, results: Sequence[Any]) -> list[str]:
        """``row`` was scheduled: report it relayed; its outcomes."""
        claim.relayed(row.order_id, self.clock.now())
        return ["relayed", *(result.state for result in results)]

    def refused(self, row: OutboxRow, claim: Claim, exc: Exception) -> list[str]:
        """``row`` can never be scheduled (``exc`` says why): report it refused; its outcome."""
        claim.refused(row.order_id, f"{type(exc).__name__}: {exc}")
        log.warning("outbox row refused", extra={"order_id": row.order_id, "error": str(exc)[:300]})
        return [REFUSED]


def finished(outcomes: Counter[str]) -> int:
    """Rows a run has settled so far, relayed or refused."""
    return outcomes["relayed"] + outcomes[REFUSED]


class Relay(RelayBase):
    """Claims waiting rows batch by batch and relays each through ``schedule``."""

    schedule: Schedule

    def run(self, limit: int = 500) -> RelaySummary:
        """Relay up to ``limit`` orders, oldest first; stop early when none are waiting."""
        outcomes: Counter[str] = Counter()
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="relay") as pool:
            while (done := finished(outcomes)) < limit:
                with self.next_claim(limit - done) as claim:
                    for states in pool.map(lambda row: self._relay(row, claim), claim.rows):
                        outcomes.update(states)
                if not claim.rows:
                    break
        return RelaySummary.of(outcomes)

    def _relay(self, row: OutboxRow, claim: Claim) -> list[str]:
        """One row: ``schedule`` it, then report it relayed (or refused, if it never can be)."""
        try:
            results = self.schedule(row.order(), payment_id=row.payment_id)
        except REFUSABLE as exc:
            return self.refused(row, claim, exc)
        return self.relayed(row, claim, results)


def outbox_database_url(settings: Settings) -> str | None:
    """The outbox database: ``ORDERTASKS_OUTBOX_URL``, else the catalog's ``[outbox] database_url``
    (``${NAME}`` expanded from the environment), else ``None``."""
    if settings.store.outbox_url:
        return settings.store.outbox_url
    named = settings.catalog().outbox_database_url
    return expand(named, settings.environment, "[outbox] database_url") if named else None


def relay_url(settings: Settings) -> str:
    """``outbox_database_url``, or ``ConfigurationError`` saying how to name one."""
    url = outbox_database_url(settings)
    if url is None:
        raise ConfigurationError(NO_URL)
    return url


class RelayConnection:
    """A relayer's own connection to the outbox database at ``url``: opened on first use,
    dropped when the database was lost (the next use connects afresh)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._database: Database | None = None

    def open(self) -> Database:
        """The connection, opened if it is not."""
        if self._database is None:
            self._database = open_database(self.url)
        return self._database

    def drop(self) -> None:
        """Close the connection (quietly: the server may have dropped it already)."""
        if self._database is not None:
            with suppress(Exception):
                self._database.close()
            self._database = None


class Relayer:
    """``OrderTasks.relay()``: one relay at a time over one connection, opened on first use."""

    def __init__(self, tasks: "OrderTasks", url: str, batch: int = 20, workers: int = 4) -> None:
        self.tasks, self.batch, self.workers = tasks, batch, workers
        self.connection = RelayConnection(url)
        self._lock = threading.Lock()

    def run(self, limit: int = 500) -> RelaySummary:
        """Relay up to ``limit`` orders; a caller that finds a relay running waits for it, then
        runs its own (so a row committed meanwhile is never left behind)."""
        with self._lock:
            database = self.connection.open()
            relay = Relay(outbox_for(database.dialect), database, self.tasks.schedule, self.tasks.clock,
                          self.batch, self.workers)
            try:
                return relay.run(limit)
            except DependencyUnavailable:
                self.connection.drop()        # the next run connects afresh
                raise

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.connection.drop()


_building = threading.Lock()


def relayer_for(tasks: "OrderTasks") -> Relayer:
    """``tasks``' relayer, built once (and closed by ``tasks.close()``)."""
    with _building:
        relayer: Relayer | None = tasks._relayer
        if relayer is None:
            relayer = tasks._relayer = Relayer(tasks, relay_url(tasks.settings))
            tasks._owned.append(relayer)
        return relayer
