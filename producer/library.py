"""``OrderTasks``: the library API any shop's checkout calls (FastAPI, Django, a Stripe webhook).

    with OrderTasks.from_env() as tasks:
        tasks.schedule(order)          # the paid order snapshot, with its "order_id"
        tasks.status(order_id)
        tasks.cancel(order_id)         # refunded in its first minute: nothing more happens

``schedule`` first stores the order and its outbox (one pending entry per catalog kind) in
one transaction, then creates every task concurrently with deterministic names. If Cloud
Tasks is unreachable the entries stay pending and ``reconcile()`` finishes the job later, so
an order that was paid is never left without its side effects. Every step is idempotent on
the order id: calling ``schedule`` again for the same order is harmless.

``cancel`` records a cancellation per kind in the idempotency store, atomically with
respect to the handler's claim, then deletes the pending tasks. A delivery that arrives
after the cancellation is recorded does nothing (outcome ``cancelled``); one that had
already claimed its effect is reported as ``in_flight``.

The store steps live in ``OrderRecords`` (and ``record_cancellation``), the Cloud Tasks calls in
the enqueuer, so ``AsyncOrderTasks`` (``producer.async_library``) runs the same steps around
the async client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as gexc
from pydantic import BaseModel, ValidationError

from ordertasks.handlers.config import Catalog, Settings
from ordertasks.handlers.contract import (ORDER_ID_RULE, OrderSnapshot, describe_errors, effect_key, new_order_snapshot,
                                         valid_order_id)
from ordertasks.handlers.errors import InvalidPayload, OrderTasksError
from ordertasks.handlers.kind import SystemClock
from ordertasks.handlers.ports import (LIVE_FAILED, ClaimState, Clock, EffectRecord, EffectState, EffectStore, FailedTask,
                                      OrderRecord, OrderStatus, OrderStore, OutboxEntry, OutboxState, TaskState)
from ordertasks.handlers.wiring import Stores, build_stores, recorded_effects
from ordertasks.producer.enqueue import CREATED, EXISTS, ENQUEUE_ERRORS, EnqueueResult, Enqueuer, TaskPlanner
from ordertasks.producer.audit import Auditor
from ordertasks.producer.effect_states import effect_state, retry_view
from ordertasks.producer.reconcile import ReconcileSummary, reconcile

if TYPE_CHECKING:
    from ordertasks.producer.outbox.relay import RelaySummary

log = logging.getLogger("ordertasks.library")

LIVE_FAILURE_STATUSES = LIVE_FAILED     # the name callers knew
CANCEL_STATES = {ClaimState.CANCELLED: TaskState.CANCELLED, ClaimState.DONE: TaskState.DONE, ClaimState.LEASED: "in_flight"}
SETTLED_RECORDS = (EffectState.DONE, EffectState.CANCELLED)


class OrderNotFound(OrderTasksError, LookupError):
    """No order with this id was scheduled."""


class OrderConflict(OrderTasksError, ValueError):
    """An order with this id exists with other content: order ids must not be reused."""


@dataclass(frozen=True)
class TaskResult:
    """One kind of one order: its task name and what became of it.

    ``state``: ``created`` (now), ``exists`` (Cloud Tasks already had it), ``pending`` (not
    yet: reconcile will), ``cancelled``, ``done`` (cancel came too late) or ``in_flight``.
    """

    kind: str
    name: str
    state: str
    error: str | None = None


class OrderRecords:
    """The store side of scheduling, shared by ``OrderTasks`` and ``AsyncOrderTasks``: what an
    order owes and what became of it. Every method is synchronous store I/O (or none at all);
    the Cloud Tasks calls are the caller's (``Enqueuer`` or ``AsyncEnqueuer``)."""

    def __init__(self, settings: Settings, stores: Stores, planner: TaskPlanner, clock: Clock | None = None) -> None:
        self.settings = settings
        self.stores = stores
        self.planner = planner
        self.catalog: Catalog = planner.catalog
        self.clock = clock or SystemClock()
        self._effects: EffectStore | None = None

    @property
    def effects(self) -> EffectStore:
        """Effect states as every status view reads them: the idempotency store and the far
        ends of create-once kinds (``handlers.effect_records``); built on first use."""
        if self._effects is None:
            self._effects = recorded_effects(self.settings, self.stores, self.catalog)
        return self._effects

    @property
    def kinds(self) -> list[str]:
        """The catalog's kinds: one task each per order."""
        return list(self.catalog.kinds)

    # --- schedule, the store steps ------------------------------------------------------

    def record_paid(self, order_id: str, snapshot: OrderSnapshot, payment_id: str | None = None,
                    stored: OrderRecord | None = None) -> bool:
        """Store the order (or check it against the stored one) and, unless already paid, mark
        it paid with its outbox in one transaction; ``False`` when the order is cancelled."""
        record = stored if stored is not None and stored.order_id == order_id else self._stored(order_id, snapshot)
        if record.status == OrderStatus.CANCELLED:
            return False
        if record.status == OrderStatus.PAID:
            return True
        now = self.clock.now()
        reference = payment_id or record.charge_id or "external"
        # False: cancelled meanwhile, so nothing is owed.
        return self.stores.orders.mark_paid(order_id, reference, self.outbox(order_id, snapshot, now), now)

    def outbox(self, order_id: str, snapshot: OrderSnapshot, now: datetime) -> list[OutboxEntry]:
        """The effects an order is owed: one per catalog kind, all pending, each audited once its
        queue's whole retry span has passed (``producer.audit``)."""
        return [OutboxEntry(order_id=order_id, kind=p.kind, task_name=p.name, schedule_time=p.schedule_time,
                            state=OutboxState.PENDING, created_at=now,
                            audit_at=p.schedule_time + timedelta(seconds=self.catalog.audit_after_seconds(p.kind)))
                for p in self.planner.plan(order_id, snapshot, self.kinds)]

    def _stored(self, order_id: str, snapshot: OrderSnapshot) -> OrderRecord:
        data = snapshot.model_dump(mode="json")
        record = OrderRecord(order_id=order_id, status=OrderStatus.CREATED, snapshot=data, created_at=self.clock.now())
        if self.stores.orders.create_order(record):
            return record
        existing = self.stores.orders.get_order(order_id)
        if existing is None:
            raise OrderConflict(f"order {order_id!r} vanished while being scheduled; schedule it again")
        if OrderSnapshot.model_validate(existing.snapshot) != snapshot:
            raise OrderConflict(f"order {order_id!r} was already scheduled with other content, and a scheduled "
                                "order cannot be amended: cancel it and schedule the changed order under a new id")
        return existing

    def cancelled(self, order_id: str) -> list[TaskResult]:
        """Every task of a cancelled order, as ``schedule`` answers for it."""
        return [TaskResult(e.kind, e.task_name, TaskState.CANCELLED) for e in self.stores.orders.outbox_for(order_id)]

    def owed(self, order_id: str) -> tuple[dict[str, OutboxEntry], list[str]]:
        """The order's outbox entries by kind, and the kinds Cloud Tasks may not hold yet."""
        entries = {e.kind: e for e in self.stores.orders.outbox_for(order_id)}
        return entries, [kind for kind in self.kinds
                         if entries.get(kind) is None or entries[kind].state != OutboxState.SCHEDULED]

    def record_scheduled(self, order_id: str, entries: Mapping[str, OutboxEntry],
                         created: Iterable[EnqueueResult]) -> list[TaskResult]:
        """Mark the tasks Cloud Tasks now holds scheduled; one result per catalog kind."""
        by_kind = {result.kind: result for result in created}
        # One call for all: Firestore bills a write per document, and the outbox is one document.
        scheduled = [result.kind for result in by_kind.values() if result.scheduled]
        if scheduled:
            self.stores.orders.mark_scheduled_many(order_id, scheduled, self.clock.now())
        return [_result(by_kind[kind]) if kind in by_kind else TaskResult(kind, entries[kind].task_name, EXISTS)
                for kind in self.kinds]

    # --- status -------------------------------------------------------------------------

    def status(self, order_id: str) -> dict[str, Any]:
        """The order's status and each task's (``producer.effect_states``: pending, scheduled,
        running, retrying, done, failed or cancelled)."""
        record = self.stores.orders.get_order(order_id)
        if record is None:
            raise OrderNotFound(f"no order {order_id!r} was scheduled; check the order id")
        return {"order_id": order_id, "status": record.status,
                "tasks": [self.task_view(e, record.status) for e in self.stores.orders.outbox_for(order_id)]}

    def task_view(self, entry: OutboxEntry, order_status: str = "paid") -> dict[str, Any]:
        """One task as ``status`` and ``GET /api/orders/{id}`` show it; a ``retrying`` or
        ``failed`` one with ``attempt``, ``max_attempts``, ``last_error`` and ``next_attempt_at``
        (``None`` when they do not apply)."""
        effect = self.effects.get_effect(entry.order_id, entry.kind)
        failed = self._failed_entry(entry, effect, order_status)
        state = effect_state(entry.state, effect, failed, order_status)
        return {"kind": entry.kind, "task_name": entry.task_name, "schedule_time": entry.schedule_time.isoformat(),
                "state": state, "duplicates": effect.duplicates if effect else 0, **retry_view(state, effect, failed)}

    def task_state(self, entry: OutboxEntry, effect: EffectRecord | None, order_status: str = "paid") -> str:
        """The effect's state in the one vocabulary (``producer.effect_states.effect_state``)."""
        return effect_state(entry.state, effect, self._failed_entry(entry, effect, order_status), order_status)

    def _failed_entry(self, entry: OutboxEntry, effect: EffectRecord | None, order_status: str) -> FailedTask | None:
        """The failed-task entry where it can change the state (no read for a settled effect)."""
        if order_status == OrderStatus.CANCELLED or (effect is not None and effect.state in SETTLED_RECORDS):
            return None
        return self.stores.failed.get_failed(effect_key(entry.order_id, entry.kind))

    # --- cancel, the store step ---------------------------------------------------------

    def record_cancellation(self, order_id: str, kinds: Iterable[str] | None = None) -> "Cancellation":
        """``record_cancellation`` over this object's stores and clock."""
        return record_cancellation(self.stores.orders, self.effects, self.catalog, self.clock, order_id, kinds)


class OrderTasks(OrderRecords):
    """Schedule, inspect and cancel an order's side effects (see the module docstring)."""

    def __init__(self, settings: Settings, stores: Stores, enqueuer: Enqueuer, clock: Clock | None = None,
                 owned: Iterable[Any] = ()) -> None:
        super().__init__(settings, stores, enqueuer, clock)
        self.enqueuer = enqueuer
        self._owned = list(owned)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "OrderTasks":
        """Everything from ``ORDERTASKS_*`` (the same ``Settings`` as every other part)."""
        return cls.from_settings(Settings.from_env(environ))

    @classmethod
    def from_settings(cls, settings: Settings) -> "OrderTasks":
        """Stores and a Cloud Tasks client as ``settings`` say; closed by ``close()``."""
        from ordertasks.producer.wiring import tasks_client

        client = tasks_client(settings)
        enqueuer = Enqueuer(client, settings, settings.catalog())
        return cls(settings, build_stores(settings), enqueuer, owned=[enqueuer, client.transport])

    def __enter__(self) -> "OrderTasks":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the enqueue threads and close the clients this object built."""
        for part in self._owned:
            part.close()
        self._owned.clear()

    # --- schedule -----------------------------------------------------------------------

    def schedule(self, order: Mapping[str, Any] | BaseModel, *, payment_id: str | None = None,
                 stored: OrderRecord | None = None, transaction: Any = None) -> list[TaskResult]:
        """Store the paid order and its outbox, then create every task; one result per kind.

        ``stored``: the order's record as the caller just stored or read it (our checkout
        creates the order before charging): it is used as is, saving a ``create_order`` that
        would be refused and the read after it.

        ``transaction``: the shop's open SQLAlchemy ``Connection``/``Session``, psycopg 3 or
        sqlite3 connection (or Django's ``connection``) inside its own transaction: the order
        and what it owes are written there as outbox rows and nothing else happens; every
        result is ``pending`` until ``relay()`` runs after the commit (``producer.outbox``).
        """
        if transaction is not None:
            from ordertasks.producer.outbox.writer import schedule_in

            return schedule_in(self, order, transaction, payment_id)
        order_id, snapshot = order_parts(order)
        with self.planner.tracing.span("schedule order", order_id=order_id):
            if not self.record_paid(order_id, snapshot, payment_id, stored):
                return self.cancelled(order_id)
            entries, owed = self.owed(order_id)
            created = self.enqueuer.enqueue_order(order_id, snapshot, owed) if owed else []
            return self.record_scheduled(order_id, entries, created)

    # --- cancel -------------------------------------------------------------------------

    def cancel(self, order_id: str, kinds: Iterable[str] | None = None) -> list[TaskResult]:
        """Cancel the order's tasks (all kinds, or ``kinds``): see the module docstring."""
        return cancel_order(self.stores.orders, self.effects, self.enqueuer.client, self.catalog, self.clock,
                            order_id, kinds, timeout=self.settings.tasks.enqueue_timeout_seconds)

    # --- maintenance --------------------------------------------------------------------

    def reconcile(self, grace_seconds: float = 60.0, limit: int = 500, audit: bool = True,
                  audit_limit: int | None = None, audit_seconds: float | None = None) -> ReconcileSummary:
        """Enqueue outbox entries still pending after ``grace_seconds`` (Cloud Tasks was down),
        then (``audit``) account for owed effects Cloud Tasks dropped: ``producer.audit``, at
        most ``audit_limit`` of them (default ``limit``), stopping after ``audit_seconds``."""
        summary = reconcile(self.stores.orders, self.enqueuer, self.clock.now(), grace_seconds, limit)
        if not audit:
            return summary
        return summary.with_audit(self.auditor().run(audit_limit or limit, audit_seconds))

    def auditor(self, progress: Callable[[str], None] | None = None) -> Auditor:
        """The auditor over this object's stores, Cloud Tasks client and clock."""
        return Auditor(self.stores.orders, self.effects, self.stores.failed, self.enqueuer, self.clock, progress)

    def sweep(self, limit: int = 500) -> list[Any]:
        """Replay every failed task an operator marked ``replay_requested``."""
        from ordertasks.producer.triage import triage_for

        return triage_for(self.stores.failed, self.enqueuer).sweep(limit)

    # --- the transactional outbox (producer.outbox) -------------------------------------------

    _relayer: Any = None        # built on the first relay(), closed by close()

    def relay(self, limit: int = 500) -> "RelaySummary":
        """Move committed outbox rows (``schedule(order, transaction=…)``) to the store and Cloud
        Tasks, each order once, at most ``limit`` orders. The outbox database is
        ``ORDERTASKS_OUTBOX_URL`` (else the catalog's ``[outbox] database_url``). Call it after
        the commit (Django's ``transaction.on_commit``, a FastAPI background task); the
        maintenance reconcile runs it too, for rows a crash left behind."""
        from ordertasks.producer.outbox.relay import relayer_for

        return relayer_for(self).run(limit)


@dataclass(frozen=True)
class Cancellation:
    """A cancellation as recorded in the stores, before its pending tasks are deleted."""

    order_id: str
    kinds: list[str]                    # the kinds cancelled, in the order asked
    states: dict[str, ClaimState]       # what the idempotency store answered per kind
    names: dict[str, str]               # each kind's task name, from the outbox

    def to_delete(self) -> list[str]:
        """The task names to delete: those of kinds that had not started."""
        return [self.names[k] for k in self.kinds if k in self.names and self.states[k] is ClaimState.CANCELLED]

    def results(self) -> list[TaskResult]:
        """One result per kind: ``cancelled``, ``done`` or ``in_flight``."""
        return [TaskResult(kind, self.names.get(kind, ""), CANCEL_STATES[self.states[kind]]) for kind in self.kinds]


def record_cancellation(orders: OrderStore, effects: EffectStore, catalog: Catalog, clock: Clock,
                        order_id: str, kinds: Iterable[str] | None = None) -> Cancellation:
    """Record the cancellation per kind (the whole order when ``kinds`` is ``None``), atomically
    with the handler's claim; raises ``OrderNotFound`` for an unknown order."""
    record = orders.get_order(order_id)
    if record is None:
        raise OrderNotFound(f"no order {order_id!r} was scheduled; check the order id")
    chosen = _chosen_kinds(catalog, kinds)
    now = clock.now()
    if kinds is None and record.status != OrderStatus.CANCELLED:
        orders.mark_cancelled(order_id, now)
    ttl = catalog.ttl_days * 86400.0
    states = {kind: effects.cancel_effect(order_id, kind, now, ttl) for kind in chosen}
    log.info("order cancelled", extra={"order_id": order_id, "kinds": chosen})
    return Cancellation(order_id, chosen, states, {e.kind: e.task_name for e in orders.outbox_for(order_id)})


def cancel_order(orders: OrderStore, effects: EffectStore, client: Any, catalog: Catalog, clock: Clock,
                 order_id: str, kinds: Iterable[str] | None = None, timeout: float = 10.0) -> list[TaskResult]:
    """``OrderTasks.cancel`` over explicit parts (the console cancels through this too)."""
    cancellation = record_cancellation(orders, effects, catalog, clock, order_id, kinds)
    _delete_tasks(client, cancellation.to_delete(), timeout)
    return cancellation.results()


def _chosen_kinds(catalog: Catalog, kinds: Iterable[str] | None) -> list[str]:
    known = list(catalog.kinds)
    chosen = known if kinds is None else list(kinds)
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise ValueError(f"unknown kinds {unknown}; the catalog has {known}")
    return chosen


def _delete_tasks(client: Any, names: list[str], timeout: float) -> None:
    def delete(name: str) -> None:
        try:
            client.delete_task(name=name, timeout=timeout)
        except ENQUEUE_ERRORS as exc:
            not_deleted(name, exc)
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(names)))) as pool:
        list(pool.map(delete, names))


def not_deleted(name: str, exc: BaseException) -> None:
    """A delete of a cancelled task that failed: harmless (its delivery will do nothing), logged
    unless the task was already gone."""
    if isinstance(exc, gexc.NotFound):
        return      # already dispatched or deleted: the cancel record stops it anyway
    log.warning("could not delete a cancelled task; its delivery will do nothing",
                extra={"task_name": name, "error": repr(exc)})


def order_parts(order: Mapping[str, Any] | BaseModel) -> tuple[str, OrderSnapshot]:
    """``(order_id, snapshot)`` of a dict or model holding ``order_id`` and the snapshot fields
    (``handlers.contract.new_order_snapshot``: amounts checked against the currency's minor units)."""
    raw = dict(order.model_dump(mode="json") if isinstance(order, BaseModel) else order)
    order_id = raw.pop("order_id", None)
    if not isinstance(order_id, str) or not valid_order_id(order_id):
        raise InvalidPayload(f"order_id {str(order_id)[:80]!r} is missing or invalid: {ORDER_ID_RULE}")
    try:
        return order_id, new_order_snapshot(raw)
    except ValidationError as exc:
        raise InvalidPayload(f"order {order_id} is not a valid order snapshot: {describe_errors(exc)}") from exc


def _result(result: EnqueueResult) -> TaskResult:
    state = result.status if result.status in (CREATED, EXISTS) else TaskState.PENDING
    return TaskResult(result.kind, result.task_name, state, result.error)
