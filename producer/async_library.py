"""``AsyncOrderTasks``: the library API for asyncio code (FastAPI ``async def``, aiohttp, Starlette).

    async with AsyncOrderTasks.from_env() as tasks:
        await tasks.schedule(order)
        await tasks.status(order_id)
        await tasks.cancel(order_id)
        async with engine.begin() as conn:                        # the shop's own transaction
            await tasks.schedule(order, transaction=conn)        # + the outbox rows (producer.outbox)
        await tasks.relay()                                      # after the commit

The same calls, answers and guarantees as ``OrderTasks`` (``producer.library``): the store
steps are ``OrderRecords``, the names, bodies and answers of Cloud Tasks calls are
``TaskPlanner``'s, both shared with the synchronous API. What differs is how the two kinds of
I/O wait:

- **Cloud Tasks** (an order's tasks, created concurrently; the deletes of a cancel; the
  auditor's ``GetTask`` and re-creations) goes through ``CloudTasksAsyncClient`` over gRPC
  aio, on the event loop itself: no thread, no thread pool. ``google-cloud-tasks`` has no
  asyncio REST transport (2.26), so ``ORDERTASKS_TASKS_TRANSPORT=rest`` is refused here.
- **The stores** (SQLite locally, Firestore in the cloud) are synchronous ports, one
  implementation per backend that the contract tests hold; each store step runs whole in a
  worker thread (``asyncio.to_thread``), so a Firestore round trip never stalls the loop.
  An order costs three or four such steps (store the order and its outbox, read the outbox,
  mark the tasks scheduled).
- **The auditor** (``reconcile``'s second half) and **the sweep** are the synchronous
  ``producer.audit`` and ``producer.triage`` run in a worker thread; their Cloud Tasks calls
  come back to the event loop's async client (``BlockingEnqueuer``).

- **The transactional outbox** (``producer.outbox``): ``schedule(order, transaction=…)``
  writes through the shop's own asyncio connection inside its transaction, on the loop
  (SQLAlchemy ``AsyncConnection``/``AsyncSession`` by its ``run_sync`` bridge, psycopg 3
  ``AsyncConnection`` natively); ``relay()`` claims and marks rows on a worker thread over its
  own connection and schedules them through this object (``outbox.async_relay``).

A gRPC aio channel belongs to the event loop it was made in, so the client connects on first
use, inside the running loop: build the object anywhere, use it from one loop (FastAPI's
lifespan is the place), and close it with ``async with`` or ``await tasks.close()``.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from ordertasks.handlers.config import Catalog, Settings
from ordertasks.handlers.contract import OrderSnapshot
from ordertasks.handlers.errors import ConfigurationError
from ordertasks.handlers.ports import Clock, OrderRecord, OrderStatus, Stores
from ordertasks.handlers.settings import TasksTransport
from ordertasks.handlers.wiring import build_stores
from ordertasks.producer.audit import AuditSummary, Auditor
from ordertasks.producer.enqueue import ENQUEUE_ERRORS, AsyncEnqueuer, EnqueueResult, HandlerTarget
from ordertasks.producer.library import OrderRecords, TaskResult, not_deleted, order_parts
from ordertasks.producer.reconcile import ReconcileSummary

if TYPE_CHECKING:
    from ordertasks.producer.outbox.async_relay import AsyncRelayer
    from ordertasks.producer.outbox.relay import RelaySummary

T = TypeVar("T")
ORDERS_AT_ONCE = 32         # orders reconcile enqueues at once (each fans out to its kinds)
REST_REFUSED = ("AsyncOrderTasks talks to Cloud Tasks over gRPC only: google-cloud-tasks has no asyncio REST "
                "transport. Unset ORDERTASKS_TASKS_TRANSPORT (or set it to grpc), or use OrderTasks for REST")


def async_tasks_client(settings: Settings) -> Any:
    """A ``CloudTasksAsyncClient`` over gRPC aio, wired as ``producer.wiring.tasks_client`` wires
    the synchronous one: an insecure channel to the emulator (``CLOUD_TASKS_EMULATOR_HOST``, or
    the local default) without credentials, else Google's endpoint with default credentials.
    Call it inside the event loop that will use the client."""
    from google.cloud import tasks_v2

    from ordertasks.producer.wiring import emulator_host

    if settings.tasks.transport is TasksTransport.REST:
        raise ConfigurationError(REST_REFUSED)
    host = emulator_host(settings)
    if host is None:
        return tasks_v2.CloudTasksAsyncClient()
    return _emulator_aio_client(host)


def _emulator_aio_client(host: str) -> Any:
    import grpc
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcAsyncIOTransport

    from ordertasks.producer.wiring import EMULATOR_CHANNEL_OPTIONS

    target = host.split("://", 1)[-1].rstrip("/")
    channel = grpc.aio.insecure_channel(target, options=EMULATOR_CHANNEL_OPTIONS)
    return tasks_v2.CloudTasksAsyncClient(transport=CloudTasksGrpcAsyncIOTransport(channel=channel))


class BlockingEnqueuer:
    """The synchronous enqueuer the auditor and triage expect, for code on a worker thread:
    each Cloud Tasks call runs on ``loop`` through the ``AsyncEnqueuer`` and the thread waits
    for it. Never call it from the loop's own thread (it would wait for itself)."""

    def __init__(self, enqueuer: AsyncEnqueuer, loop: asyncio.AbstractEventLoop) -> None:
        self.enqueuer = enqueuer
        self.catalog: Catalog = enqueuer.catalog
        self.settings = enqueuer.settings
        self.clock = enqueuer.clock
        self.client = self          # the auditor calls ``enqueuer.client.get_task``
        self._loop = loop

    def get_task(self, name: str, timeout: float | None = None) -> Any:
        """``GetTask`` (``NotFound`` when Cloud Tasks no longer holds it); the enqueue timeout applies."""
        return self._wait(self.enqueuer.get_task(name))

    def recreate(self, original_task_name: str, order_id: str, kind: str, audit: int) -> EnqueueResult:
        """``AsyncEnqueuer.recreate``, waited for."""
        return self._wait(self.enqueuer.recreate(original_task_name, order_id, kind, audit))

    def replay_body(self, order_id: str, kind: str, body: bytes, replay: int,
                    target: HandlerTarget | None = None) -> EnqueueResult:
        """``AsyncEnqueuer.replay_body``, waited for."""
        return self._wait(self.enqueuer.replay_body(order_id, kind, body, replay, target))

    def _wait(self, call: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(call, self._loop).result()


class AsyncOrderTasks:
    """``OrderTasks`` as coroutines, on the Cloud Tasks async client (see the module docstring)."""

    def __init__(self, settings: Settings, stores: Stores, enqueuer: AsyncEnqueuer, clock: Clock | None = None,
                 owned: bool = False) -> None:
        # owned: close() closes the enqueuer's client (from_settings); a caller's parts stay the caller's.
        self.records = OrderRecords(settings, stores, enqueuer, clock)
        self.enqueuer = enqueuer
        self._owned = owned
        self._relayer: AsyncRelayer | None = None     # built on the first relay(), closed by close()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "AsyncOrderTasks":
        """Everything from ``ORDERTASKS_*`` (the same ``Settings`` as every other part)."""
        return cls.from_settings(Settings.from_env(environ))

    @classmethod
    def from_settings(cls, settings: Settings) -> "AsyncOrderTasks":
        """Stores and a Cloud Tasks async client as ``settings`` say (the client connects on first
        use, in the running loop); closed by ``close()``. REST is refused: see the module docstring."""
        if settings.tasks.transport is TasksTransport.REST:
            raise ConfigurationError(REST_REFUSED)
        enqueuer = AsyncEnqueuer(None, settings, settings.catalog(), connect=lambda: async_tasks_client(settings))
        return cls(settings, build_stores(settings), enqueuer, owned=True)

    async def __aenter__(self) -> "AsyncOrderTasks":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the relay's outbox connection and the Cloud Tasks channel this object opened
        (the stores stay open, as ``OrderTasks``'s do)."""
        if self._relayer is not None:
            await self._relayer.close()
        if self._owned:
            await self.enqueuer.close()

    @property
    def settings(self) -> Settings:
        """The settings in use."""
        return self.records.settings

    @property
    def stores(self) -> Stores:
        """The stores (synchronous ports; this object calls them on worker threads)."""
        return self.records.stores

    @property
    def catalog(self) -> Catalog:
        """The task catalog."""
        return self.records.catalog

    @property
    def kinds(self) -> list[str]:
        """The catalog's kinds: one task each per order."""
        return self.records.kinds

    # --- the calls ----------------------------------------------------------------------

    async def schedule(self, order: Mapping[str, Any] | BaseModel, *, payment_id: str | None = None,
                       stored: OrderRecord | None = None, transaction: Any = None) -> list[TaskResult]:
        """``OrderTasks.schedule``: store the paid order and its outbox, then create every task
        concurrently on the event loop; one result per kind.

        ``transaction``: the shop's SQLAlchemy ``AsyncConnection``/``AsyncSession`` or psycopg 3
        ``AsyncConnection`` (or any connection ``OrderTasks.schedule`` takes) inside its own open
        transaction: the order and what it owes are written there as outbox rows and nothing else
        happens; every result is ``pending`` until ``relay()`` runs after the commit.
        """
        if transaction is not None:
            from ordertasks.producer.outbox.writer import schedule_in_async

            return await schedule_in_async(self.records, order, transaction, payment_id)
        order_id, snapshot = order_parts(order)
        if not await _store_io(self.records.record_paid, order_id, snapshot, payment_id, stored):
            return await _store_io(self.records.cancelled, order_id)
        entries, owed = await _store_io(self.records.owed, order_id)
        created = await self.enqueuer.enqueue_order(order_id, snapshot, owed) if owed else []
        return await _store_io(self.records.record_scheduled, order_id, entries, created)

    async def status(self, order_id: str) -> dict[str, Any]:
        """``OrderTasks.status``: the order's status and each task's (store reads only)."""
        return await _store_io(self.records.status, order_id)

    async def cancel(self, order_id: str, kinds: Iterable[str] | None = None) -> list[TaskResult]:
        """``OrderTasks.cancel``: record the cancellation, then delete the pending tasks concurrently."""
        chosen = None if kinds is None else list(kinds)
        cancellation = await _store_io(self.records.record_cancellation, order_id, chosen)
        await asyncio.gather(*(self._delete(name) for name in cancellation.to_delete()))
        return cancellation.results()

    async def reconcile(self, grace_seconds: float = 60.0, limit: int = 500, audit: bool = True,
                        audit_limit: int | None = None, audit_seconds: float | None = None) -> ReconcileSummary:
        """``OrderTasks.reconcile``: enqueue outbox entries still pending after ``grace_seconds``
        (up to ``ORDERS_AT_ONCE`` orders at once, on the loop), then (``audit``) run the auditor."""
        now = self.records.clock.now()
        entries = await _store_io(self.stores.orders.pending_outbox, now - timedelta(seconds=grace_seconds), limit)
        by_order: dict[str, list[str]] = defaultdict(list)
        for entry in entries:
            by_order[entry.order_id].append(entry.kind)
        gate = asyncio.Semaphore(ORDERS_AT_ONCE)
        scheduled = sum(await asyncio.gather(*(self._reconcile_order(gate, order_id, kinds)
                                               for order_id, kinds in by_order.items())))
        summary = ReconcileSummary(orders=len(by_order), pending=len(entries), scheduled=scheduled,
                                   failed=len(entries) - scheduled)
        if not audit:
            return summary
        return summary.with_audit(await self.audit(audit_limit or limit, audit_seconds))

    async def audit(self, limit: int = 500, seconds: float | None = None) -> AuditSummary:
        """The auditor alone (``OrderTasks.auditor().run``): on a worker thread, its Cloud Tasks
        calls on this loop's client."""
        records, enqueuer = self.records, BlockingEnqueuer(self.enqueuer, asyncio.get_running_loop())
        auditor = Auditor(self.stores.orders, records.effects, self.stores.failed, enqueuer,  # type: ignore[arg-type]
                          records.clock)
        return await asyncio.to_thread(auditor.run, limit, seconds)

    async def sweep(self, limit: int = 500) -> list[Any]:
        """``OrderTasks.sweep``: replay every failed task an operator marked ``replay_requested``."""
        from ordertasks.producer.triage import triage_for

        triage = triage_for(self.stores.failed, BlockingEnqueuer(self.enqueuer, asyncio.get_running_loop()))
        return await asyncio.to_thread(triage.sweep, limit)

    async def relay(self, limit: int = 500) -> "RelaySummary":
        """``OrderTasks.relay``: move committed outbox rows to the store and Cloud Tasks, each order
        once, at most ``limit`` orders (``outbox.async_relay``: the database part on a worker
        thread, Cloud Tasks on the loop). One relay at a time per object; call it after the commit."""
        from ordertasks.producer.outbox.async_relay import AsyncRelayer
        from ordertasks.producer.outbox.relay import relay_url

        if self._relayer is None:
            self._relayer = AsyncRelayer(self, relay_url(self.settings))
        return await self._relayer.run(limit)

    # --- steps --------------------------------------------------------------------------

    async def _reconcile_order(self, gate: asyncio.Semaphore, order_id: str, kinds: list[str]) -> int:
        """Enqueue the pending ``kinds`` of one order; how many Cloud Tasks now holds."""
        async with gate:
            order = await _store_io(self.stores.orders.get_order, order_id)
            if order is None:
                return 0    # an outbox without its order cannot be built; left pending, counted as failed
            if order.status == OrderStatus.CANCELLED:
                return await self._mark_scheduled(order_id, kinds)   # nothing is owed: off the pending list
            created = await self.enqueuer.enqueue_order(order_id, OrderSnapshot.model_validate(order.snapshot), kinds)
            return await self._mark_scheduled(order_id, [result.kind for result in created if result.scheduled])

    async def _mark_scheduled(self, order_id: str, kinds: list[str]) -> int:
        if kinds:
            await _store_io(self.stores.orders.mark_scheduled_many, order_id, kinds, self.records.clock.now())
        return len(kinds)

    async def _delete(self, name: str) -> None:
        try:
            await self.enqueuer.delete_task(name)
        except ENQUEUE_ERRORS as exc:
            not_deleted(name, exc)


def _store_io(call: Callable[..., T], *args: Any) -> Awaitable[T]:
    """One synchronous store step on a worker thread (``asyncio.to_thread``): see the module docstring."""
    return asyncio.to_thread(call, *args)
