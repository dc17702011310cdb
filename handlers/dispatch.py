"""``Dispatcher.run(delivery) -> Result``: one Cloud Tasks delivery, exactly once in effect.

The whole retry policy lives here, once:

1. Parse the body (a reference: kind and order id). Invalid or unknown kind → failed-task
   record, ``DEAD`` (no retry can fix it).
2. Read the stored order and project the kind's data from it. No such order (a forged or
   stray task) or not paid → failed-task record, ``DEAD``, no effect. A cancelled order →
   ``CANCELLED``: nothing happens, nothing to triage.
3. Claim ``(order_id, kind)``. Already ``done`` → ``DUPLICATE``. A live lease held by a
   concurrent delivery → ``RETRY`` (``LeaseHeld``).
4. Run the effect, then mark the record ``done`` → ``DONE``. If the mark cannot be written
   → ``RETRY`` (never a ``DONE`` the store does not know about).

   A **create-once** kind (``Kind.create_once``: one create-only write at the far end) takes
   the claim too: without it a cancel could not tell a delivery that already read the order
   from one that never will, and would answer ``cancelled`` for an invoice that is made a
   moment later. Its far end's precondition stays the guard against a crash between the
   effect and the done mark: a delivery whose create finds the record already there
   (``"created": False``) answers ``DUPLICATE`` and marks the effect done.
5. ``RetryableError`` (or an unexpected exception) → ``RETRY`` while the queue has attempts
   left, else failed-task record and ``DEAD``. ``PermanentError`` → failed-task record,
   ``DEAD``. Either way the lease is then released, and the same write records the failed
   attempt on the effect (``EffectStore.release_effect`` with an ``AttemptFailure``): state
   ``retrying`` with attempt N of M, the readable error and ``next_attempt_at`` (the queue's
   backoff for this retry, or our ``Retry-After`` when longer), or ``failed`` when no attempt
   follows. No store round trip is added: the release was always one write.
6. If a failed-task record cannot be written the answer is ``RETRY``: never drop a task.
7. ``DONE`` or ``DUPLICATE`` resolves any failed-task entry of ``(order_id, kind)`` still
   open or replayed (``resolved_by: "handler"``): the effect it was about has happened.
8. Every delivery of a known kind ends in the attempt log (``AttemptLog.record_attempt``):
   its attempt number, when it started, how long it took (the injected clock, from the
   body's arrival to the answer), the outcome (``done``, ``retry``, ``failed``,
   ``duplicate``, ``cancelled``) and the answer (the effect's result, or the redacted error),
   bounded. It is the one write a delivery adds (Firestore: one commit of two documents,
   the attempt and an increment of its kind's minute; SQLite: one transaction), made
   after the outcome is decided; if it fails the answer stays the same (the log is for
   people; the idempotency record and the failed-task log stay the truth).

``functions/main.py`` maps outcomes to HTTP status codes; nothing here knows about HTTP.
"""

from __future__ import annotations

import enum
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ordertasks.handlers.config import Catalog, QueueConfig
from ordertasks.handlers.contract import Envelope, OrderSnapshot, Task, parse_envelope, salvage_ids
from ordertasks.handlers.errors import InvalidPayload, LeaseHeld, OrderTasksError, PermanentError, RetryableError, UnknownOrder
from ordertasks.handlers.kind import EffectContext
from ordertasks.handlers.ports import (ATTEMPT_ANSWER_LIMIT, AttemptFailure, AttemptLog, AttemptOutcome, AttemptRecord,
                                      ClaimState, Clock, EffectRecord, EffectStore, FailedTaskStore, FailureReport,
                                      OrderStatus, OrderStore)
from ordertasks.handlers.redact import redact
from ordertasks.handlers.registry import KindRegistry
from ordertasks.handlers.tracing import NO_TRACING, Tracing

log = logging.getLogger("ordertasks.dispatch")


class Outcome(str, enum.Enum):
    """What became of one delivery (see the status table in ``functions/main.py``)."""

    DONE = "done"
    DUPLICATE = "duplicate"
    CANCELLED = "cancelled"
    DEAD = "dead"
    RETRY = "retry"


@dataclass(frozen=True)
class Delivery:
    """One HTTP delivery from Cloud Tasks, as read from its body and ``X-CloudTasks-*`` headers."""

    body: bytes
    task_name: str = ""
    queue_name: str = ""
    retry_count: int = 0

    @property
    def attempt(self) -> int:
        """1-based attempt number."""
        return self.retry_count + 1


@dataclass(frozen=True)
class Result:
    """The outcome of a delivery and what to log about it."""

    outcome: Outcome
    kind: str | None = None
    order_id: str | None = None
    message: str = ""
    error_type: str | None = None
    retry_after: float | None = None
    answer: str = ""                 # what the effect returned, for the attempt log (``message`` when empty)


class Dispatcher:
    """Runs deliveries against the registered effects and the stores (see module docstring)."""

    def __init__(self, kinds: KindRegistry, ctx: EffectContext, effect_store: EffectStore,
                 failed_store: FailedTaskStore, orders: OrderStore, catalog: Catalog, clock: Clock, *,
                 attempts: AttemptLog | None = None, tracing: Tracing = NO_TRACING) -> None:
        """``attempts``: where each delivery's outcome and duration go (``None``: nowhere);
        ``tracing``: spans for the order read, the claim and the effect (``handlers.tracing``)."""
        self.kinds = kinds
        self.tracing = tracing
        self.attempts = attempts
        self.ctx = ctx
        self.effect_store = effect_store
        self.failed_store = failed_store
        self.orders = orders
        self.catalog = catalog
        self.clock = clock

    def run(self, delivery: Delivery) -> Result:
        """Handle one delivery and log the attempt; never raises for anything a task or a
        dependency can cause."""
        started = self.clock.now()
        result = self._handle(delivery)
        self._log_attempt(delivery, result, started)
        return result

    def _handle(self, delivery: Delivery) -> Result:
        try:
            envelope = parse_envelope(delivery.body)
            kind = self.kinds.kind(envelope.kind)
        except PermanentError as exc:
            return self._dead_on_arrival(delivery, exc)
        try:
            with self.tracing.span("read order", order_id=envelope.order_id):
                order = self._paid_order(envelope)
        except RetryableError as exc:
            return self._retry_or_dead(delivery, _unread(envelope), exc, None)
        except UnknownOrder as exc:
            return self._dead(delivery, _unread(envelope), exc)
        except PermanentError as exc:
            return self._failed_unclaimed(delivery, _unread(envelope), exc)
        if order is None:
            return Result(Outcome.CANCELLED, envelope.kind, envelope.order_id, "order cancelled: nothing to do")
        try:
            task = kind.task_for(envelope.order_id, order, envelope.raw)
        except PermanentError as exc:
            return self._failed_unclaimed(delivery, _unread(envelope), exc)
        return self._run_task(delivery, task)

    def _paid_order(self, envelope: Envelope) -> OrderSnapshot | None:
        """The stored snapshot of a paid order; ``None`` if it was cancelled."""
        record = self.orders.get_order(envelope.order_id)
        if record is None:
            raise UnknownOrder(f"no order {envelope.order_id!r} was placed: a task for it can cause no effect")
        if record.status == OrderStatus.CANCELLED:
            return None
        if record.status != OrderStatus.PAID:
            raise InvalidPayload(f"order {envelope.order_id!r} is {record.status}, not paid: no effect")
        try:
            return OrderSnapshot.model_validate(record.snapshot)
        except ValueError as exc:
            raise InvalidPayload(f"stored order {envelope.order_id!r} is unreadable: {exc}") from exc

    # --- the happy path ----------------------------------------------------------------

    def _run_task(self, delivery: Delivery, task: Task) -> Result:
        now = self.clock.now()
        try:
            with self.tracing.span("claim", kind=task.kind) as span:
                claim = self.effect_store.claim_effect(task.order_id, task.kind, now, self._lease(task.kind),
                                                       self.catalog.ttl_days * 86400.0)
                span.set(claim=claim.state.value)
        except RetryableError as exc:
            return self._retry_or_dead(delivery, task, exc, None)
        if claim.state is ClaimState.DONE:
            self._close_failed(task, now, f"delivery {delivery.task_name or '(unnamed)'} found the effect already done")
            return Result(Outcome.DUPLICATE, task.kind, task.order_id, "effect already done")
        if claim.state is ClaimState.CANCELLED:
            return Result(Outcome.CANCELLED, task.kind, task.order_id, "cancelled before it ran: nothing to do")
        if claim.state is ClaimState.LEASED:
            held = LeaseHeld(f"another delivery holds the claim until {claim.record.lease_expires_at}")
            return self._retry_or_dead(delivery, task, held, claim.record)
        return self._perform(delivery, task, claim.record)

    def _perform(self, delivery: Delivery, task: Task, record: EffectRecord) -> Result:
        try:
            with self.tracing.span(f"effect {task.kind}", kind=task.kind):
                result = self.kinds[task.kind].perform(task, self.ctx)
        except PermanentError as exc:
            return self._released(delivery, task, exc, self._dead(delivery, task, exc))
        except RetryableError as exc:
            return self._released(delivery, task, exc, self._retry_or_dead(delivery, task, exc, record))
        except Exception as exc:  # noqa: BLE001 - a bug must not lose the task: retry, then log it as failed
            log.exception("effect %s raised unexpectedly for order %s", task.kind, task.order_id)
            return self._released(delivery, task, exc, self._retry_or_dead(delivery, task, exc, record))
        return self._complete(delivery, task, result, record)

    def _found_done(self, delivery: Delivery, task: Task, result: dict[str, Any]) -> Result:
        """The far end already had the record: a duplicate. Marked done so later duplicates stop at the read."""
        now = self.clock.now()
        try:
            self.effect_store.complete_effect(task.order_id, task.kind, result, now, duplicate=True)
        except OrderTasksError:
            log.warning("could not mark %s done after finding it at the far end", task.effect_key)
        self._close_failed(task, now, f"delivery {delivery.task_name or '(unnamed)'} found the effect already done")
        return Result(Outcome.DUPLICATE, task.kind, task.order_id, "effect already done (found at the far end)",
                      answer=_answer(result))

    def _complete(self, delivery: Delivery, task: Task, result: dict[str, Any], record: EffectRecord | None) -> Result:
        now = self.clock.now()
        if self.kinds[task.kind].create_once and not self.kinds[task.kind].created_now(result):
            return self._found_done(delivery, task, result)
        try:
            self.effect_store.complete_effect(task.order_id, task.kind, result, now)
        except OrderTasksError as exc:
            # Answering DONE here would leave the record in_progress for good: the task would be
            # neither done nor in the failed log. Retry instead: once the lease lapses the
            # redelivery re-runs the effect, which the far end absorbs (Idempotency-Key,
            # create-only invoice and fact); for email this is the documented resend window.
            log.error("effect %s for %s done but not recorded; asking for a retry", task.kind, task.order_id)
            return self._retry_or_dead(delivery, task, exc, record)
        self._close_failed(task, now, f"effect done by delivery {delivery.task_name or '(unnamed)'}")
        return Result(Outcome.DONE, task.kind, task.order_id, "effect done", answer=_answer(result))

    def _log_attempt(self, delivery: Delivery, result: Result, started: datetime) -> None:
        """Record the delivery in the attempt log (rule 8); a failure to write only logs a warning."""
        kind = result.kind
        if self.attempts is None or not result.order_id or kind is None or kind not in self.kinds:
            return              # a body with no known kind has no chart to count in (the failed log has it)
        elapsed = max(0, round((self.clock.now() - started).total_seconds() * 1000))
        answer = redact(result.answer or result.message)[:ATTEMPT_ANSWER_LIMIT]
        record = AttemptRecord(result.order_id, kind, delivery.attempt, started, elapsed, ATTEMPT_OUTCOMES[result.outcome],
                               answer, started + timedelta(days=self.catalog.ttl_days), delivery.task_name)
        try:
            self.attempts.record_attempt(record)
        except OrderTasksError:
            log.warning("could not log attempt %s of %s:%s", delivery.attempt, result.order_id, result.kind)

    def _close_failed(self, task: Task, now: datetime, note: str) -> None:
        # Whatever failed before (a lost lease race on the final attempt, a replay), the effect
        # has now happened: an entry left open would send an operator after a non-problem.
        try:
            self.failed_store.resolve_failed(task.effect_key, now, resolved_by="handler", note=note,
                                             retention_seconds=self.catalog.failed_retention_days * 86400.0)
        except OrderTasksError:
            log.warning("could not mark failed task %s resolved after its effect was done", task.effect_key)

    def _released(self, delivery: Delivery, task: Task, exc: Exception, result: Result) -> Result:
        """Give the claim back, recording the failed attempt in the same write (``retrying``
        with the next attempt's time, or ``failed`` when ``result`` is final); ``result`` as is."""
        try:
            self.effect_store.release_effect(task.order_id, task.kind, self.clock.now(),
                                             self.attempt_failure(delivery, task.kind, exc, result))
        except OrderTasksError:
            log.warning("could not release claim %s; it frees itself when the lease expires", task.effect_key)
        return result

    def attempt_failure(self, delivery: Delivery, kind: str, exc: Exception, result: Result) -> AttemptFailure:
        """What the effect's record keeps of a failed attempt (``handlers.ports.AttemptFailure``)."""
        queue = self._queue(delivery, kind)
        now = self.clock.now()
        next_at = None if result.outcome is Outcome.DEAD else now + timedelta(seconds=self._wait(queue, delivery, result))
        limit = queue.max_attempts if queue is not None and queue.max_attempts != -1 else None
        if limit is not None and queue is not None and queue.max_retry_duration_seconds > 0 and delivery.attempt >= limit:
            limit = None        # past max_attempts, the retry duration still runs: no fixed number
        return AttemptFailure(delivery.attempt, limit, redact(str(exc))[:500], next_at, self.catalog.ttl_days * 86400.0)

    @staticmethod
    def _wait(queue: QueueConfig | None, delivery: Delivery, result: Result) -> float:
        """Seconds until Cloud Tasks' next attempt: the queue's backoff for this retry, or the
        ``Retry-After`` we answer when that is longer (Cloud Tasks honours it on 429 and 503)."""
        backoff = queue.backoff_seconds(delivery.retry_count) if queue is not None else 0.0
        return max(backoff, result.retry_after or 0.0)

    # --- failures ----------------------------------------------------------------------

    def _lease(self, kind: str) -> float:
        return max(self.catalog.lease_seconds, self.catalog.kinds[kind].dispatch_deadline_seconds
                   if kind in self.catalog.kinds else 0.0)

    def _queue(self, delivery: Delivery, kind: str | None) -> QueueConfig | None:
        if delivery.queue_name in self.catalog.queues:
            return self.catalog.queues[delivery.queue_name]
        if kind is not None and kind in self.catalog.kinds:
            return self.catalog.queue_for(kind)
        return None

    def is_final_attempt(self, delivery: Delivery, kind: str, record: EffectRecord | None) -> bool:
        """True when Cloud Tasks will not deliver again after a failure of this attempt.

        Retrying stops when both ``max_attempts`` and ``max_retry_duration`` are used up.
        """
        queue = self._queue(delivery, kind)
        if queue is None:
            return True
        attempts_used = queue.max_attempts != -1 and delivery.attempt >= queue.max_attempts
        if not attempts_used or queue.max_retry_duration_seconds <= 0:
            return attempts_used
        if record is None:
            return False
        elapsed = (self.clock.now() - record.first_attempt_at).total_seconds()
        return elapsed >= queue.max_retry_duration_seconds

    def _retry_or_dead(self, delivery: Delivery, task: Task, exc: Exception,
                       record: EffectRecord | None) -> Result:
        if self.is_final_attempt(delivery, task.kind, record):
            return self._dead(delivery, task, exc, note="retryable error on the final attempt")
        retry_after = exc.retry_after if isinstance(exc, RetryableError) else None
        return Result(Outcome.RETRY, task.kind, task.order_id, redact(str(exc)), type(exc).__name__, retry_after)

    def _dead(self, delivery: Delivery, task: Task, exc: Exception, note: str = "") -> Result:
        return self._write_failure(delivery, task.order_id, task.kind, task.raw, exc, note)

    def _failed_unclaimed(self, delivery: Delivery, task: Task, exc: PermanentError) -> Result:
        """A stored order's effect that failed for good before its claim (its data cannot make
        a task): logged as failed, and its record says ``failed`` so every view counts it."""
        result = self._dead(delivery, task, exc)
        return self._released(delivery, task, exc, result) if result.outcome is Outcome.DEAD else result

    def _dead_on_arrival(self, delivery: Delivery, exc: PermanentError) -> Result:
        order_id, kind = salvage_ids(delivery.body)
        payload = {"raw": delivery.body[:8192].decode("utf-8", errors="replace")}
        return self._write_failure(delivery, order_id, kind, payload, exc, "rejected on arrival")

    def _write_failure(self, delivery: Delivery, order_id: str, kind: str, payload: dict[str, Any],
                       exc: Exception, note: str) -> Result:
        queue = self._queue(delivery, kind)
        report = FailureReport(
            order_id=order_id, kind=kind, queue=delivery.queue_name or (queue.name if queue else ""),
            task_name=delivery.task_name, payload=_json_safe(payload), error_type=type(exc).__name__,
            error=redact(str(exc))[:2000], attempt=delivery.attempt, failed_at=self.clock.now())
        try:
            self.failed_store.record_failure(report)
        except OrderTasksError as store_exc:
            message = f"failed-task record could not be written ({store_exc}); retry so nothing is lost"
            return Result(Outcome.RETRY, kind, order_id, message, type(store_exc).__name__)
        message = redact(f"{note}: {exc}" if note else str(exc))
        return Result(Outcome.DEAD, kind, order_id, message, type(exc).__name__)


ATTEMPT_OUTCOMES = {Outcome.DONE: AttemptOutcome.DONE, Outcome.DUPLICATE: AttemptOutcome.DUPLICATE,
                    Outcome.CANCELLED: AttemptOutcome.CANCELLED, Outcome.RETRY: AttemptOutcome.RETRY,
                    Outcome.DEAD: AttemptOutcome.FAILED}


def _answer(result: dict[str, Any]) -> str:
    """An effect's result as the attempt log shows it: compact JSON (redacted and cut by the caller)."""
    return json.dumps(result, sort_keys=True, default=str, separators=(", ", ": "))[:ATTEMPT_ANSWER_LIMIT * 2]


def _unread(envelope: Envelope) -> Task:
    """A task whose data was not (or could not be) read: enough to log and record a failure."""
    return Task(kind=envelope.kind, order_id=envelope.order_id, data=None, raw=envelope.raw)


def _json_safe(payload: dict[str, Any]) -> dict[str, Any]:
    """A copy that any store can hold (plain JSON types only)."""
    safe: dict[str, Any] = json.loads(json.dumps(payload, default=str))
    return safe
