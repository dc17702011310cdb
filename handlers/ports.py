"""Ports: what the core needs from the outside world, as ``Protocol``s.

Each docstring is the contract every backend in ``handlers/backends/`` honours and that
``tests/contract/`` checks over every backend (SQLite, Firestore, local directory, GCS…).
Store methods raise ``DependencyUnavailable`` when the store cannot be reached, so the
handler answers 503 and Cloud Tasks retries; they never raise backend-specific errors.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

# --- records ----------------------------------------------------------------------------


class ClaimState(str, enum.Enum):
    """What ``claim_effect`` found."""

    CLAIMED = "claimed"      # the caller now holds the lease and must run the effect
    DONE = "done"            # the effect already happened: a duplicate delivery
    LEASED = "leased"        # a concurrent delivery holds a live lease
    CANCELLED = "cancelled"  # the order (or this kind of it) was cancelled: never run it


class EffectState(enum.StrEnum):
    """``EffectRecord.state``: the idempotency record's state, as stored."""

    IN_PROGRESS = "in_progress"  # claimed; the lease says until when
    RETRYING = "retrying"        # an attempt failed and Cloud Tasks will try again (``next_attempt_at``)
    FAILED = "failed"            # the last attempt failed (or a permanent error): in the failed-task log
    DONE = "done"                # the effect happened (``result`` says what it returned)
    CANCELLED = "cancelled"      # the order (or this kind of it) was cancelled: never run it


class FailedStatus(enum.StrEnum):
    """``FailedTask.status``: where a failed task is in triage, as stored and shown."""

    OPEN = "open"                            # waiting for a person
    REPLAY_REQUESTED = "replay_requested"    # a person asked for a replay; the sweeper does it
    REPLAYED = "replayed"                    # re-enqueued under a new task name
    RESOLVED = "resolved"                    # closed: by a person, or by a later success


FAILED_STATUSES: tuple[str, ...] = tuple(FailedStatus)
# Entries that still count as failures (not yet replayed or resolved): what stats and an
# order's status call "failed", and what a person may replay.
LIVE_FAILED: frozenset[str] = frozenset({FailedStatus.OPEN, FailedStatus.REPLAY_REQUESTED})


class OutboxState(enum.StrEnum):
    """``OutboxEntry.state``: whether Cloud Tasks has accepted the entry's task."""

    PENDING = "pending"
    SCHEDULED = "scheduled"


class Settled(enum.StrEnum):
    """``OutboxEntry.settled``: the terminal state the auditor found an owed effect in.

    Every effect a paid order owes ends in exactly one of these; nothing else is terminal.
    """

    DONE = "done"                # it happened
    CANCELLED = "cancelled"      # nothing happened and nothing will
    FAILED = "failed"            # it is in the failed-task log (open, or closed by a person)


class OrderStatus(enum.StrEnum):
    """``OrderRecord.status``, as stored."""

    CREATED = "created"                  # stored, not (yet) paid
    PAID = "paid"
    PAYMENT_FAILED = "payment_failed"
    CANCELLED = "cancelled"              # kept for good: a cancelled order is never paid again


class TaskState(enum.StrEnum):
    """An effect's state: the one vocabulary of ``OrderTasks.status``, ``GET /api/orders/{id}``,
    ``ordertasks stats`` and the console (docs/library.md, "Effect states")."""

    PENDING = "pending"          # not yet accepted by Cloud Tasks
    SCHEDULED = "scheduled"      # in Cloud Tasks, no attempt has failed yet (or a replay waits)
    RUNNING = "running"          # a delivery holds the claim and is performing it
    RETRYING = "retrying"        # an attempt failed; Cloud Tasks tries again at ``next_attempt_at``
    DONE = "done"
    FAILED = "failed"            # failed for good: in the failed-task log, no attempt to come
    CANCELLED = "cancelled"


# Terminal states: nothing more will happen on its own (a person may replay a failed one).
SETTLED_STATES: frozenset[str] = frozenset({TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED})
# Work still to come: what "in progress" means, never a failed or cancelled effect.
IN_PROGRESS_STATES: frozenset[str] = frozenset({TaskState.PENDING, TaskState.SCHEDULED, TaskState.RUNNING,
                                                TaskState.RETRYING})


@dataclass(frozen=True)
class EffectRecord:
    """Idempotency record ``idempotency/{order_id}:{kind}``."""

    order_id: str
    kind: str
    state: str                       # an EffectState
    attempts: int
    lease_expires_at: datetime | None
    first_attempt_at: datetime
    updated_at: datetime
    expire_at: datetime              # Firestore TTL field
    result: dict[str, Any] = field(default_factory=dict)
    duplicates: int = 0              # deliveries absorbed after the effect was done
    # The latest failed attempt (``release_effect`` with an ``AttemptFailure``), kept until the
    # next failure; read them while ``state`` is ``retrying`` or ``failed``.
    attempt: int = 0                 # Cloud Tasks' 1-based attempt number; 0: none failed yet
    max_attempts: int | None = None  # the queue's limit; None: no fixed number
    last_error: str | None = None    # readable and redacted: the far end's HTTP status and message
    next_attempt_at: datetime | None = None   # when Cloud Tasks tries again; None when final

    @property
    def key(self) -> str:
        """``{order_id}:{kind}``."""
        return f"{self.order_id}:{self.kind}"


@dataclass(frozen=True)
class AttemptFailure:
    """A failed attempt as the handler records it on the effect (``EffectStore.release_effect``)."""

    attempt: int                     # Cloud Tasks' 1-based attempt number
    max_attempts: int | None         # the queue's ``max_attempts``; None: no fixed number
    error: str                       # readable, redacted (``handlers.redact``)
    next_attempt_at: datetime | None  # None: final (no further attempt; in the failed-task log)
    ttl_seconds: float = 35 * 86400.0   # ``expire_at`` of a record this creates (no claim before)

    @property
    def final(self) -> bool:
        """No attempt follows: the effect is ``failed``."""
        return self.next_attempt_at is None


class AttemptOutcome(enum.StrEnum):
    """``AttemptRecord.outcome``: what one delivery of a task came to, as the handler answered it."""

    DONE = "done"                # the effect happened in this attempt
    RETRY = "retry"              # it failed and Cloud Tasks tries again (the effect is ``retrying``)
    FAILED = "failed"            # it failed for good (in the failed-task log)
    DUPLICATE = "duplicate"      # the effect had already happened: nothing done
    CANCELLED = "cancelled"      # the order (or this kind of it) was cancelled: nothing done


# Outcomes whose attempt ran (or tried to run) the effect: the ones the duration percentiles
# describe. A duplicate or a cancelled delivery stops at the claim and would only drag p50 down.
TIMED_OUTCOMES: frozenset[str] = frozenset({AttemptOutcome.DONE, AttemptOutcome.RETRY, AttemptOutcome.FAILED})
ATTEMPT_ANSWER_LIMIT = 500       # characters of an attempt's answer kept (redacted before)


@dataclass(frozen=True)
class AttemptRecord:
    """One delivery of ``(order_id, kind)`` as the handler recorded it (``AttemptLog``)."""

    order_id: str
    kind: str
    attempt: int                     # Cloud Tasks' 1-based attempt number (a replay starts at 1 again)
    started_at: datetime
    duration_ms: int                 # from the delivery's arrival to the handler's answer
    outcome: str                     # an AttemptOutcome
    answer: str                      # readable, redacted, at most ATTEMPT_ANSWER_LIMIT characters
    expire_at: datetime              # TTL field: the attempt is deleted after it
    task_name: str = ""

    @property
    def finished_at(self) -> datetime:
        """When the handler answered: the minute an attempt is counted in."""
        return self.started_at + timedelta(milliseconds=self.duration_ms)


@dataclass(frozen=True)
class MinuteTally:
    """What ended in one minute for one kind: attempts per outcome and a duration histogram.

    ``durations`` maps a bucket number (``handlers.attempt_stats.duration_bucket``) to the
    number of timed attempts (``TIMED_OUTCOMES``) whose duration fell in it.
    """

    kind: str
    minute: datetime                 # the minute's start, UTC
    outcomes: dict[str, int]         # AttemptOutcome -> attempts
    durations: dict[int, int]


@dataclass(frozen=True)
class Claim:
    """Result of a claim: the state found and the record as it is after the claim."""

    state: ClaimState
    record: EffectRecord


FAILED_RETENTION_SECONDS = 90 * 86400.0   # a resolved entry's lifetime unless the catalog says


@dataclass(frozen=True)
class FailedFilter:
    """Which failed-task entries a console or CLI query means (every field optional).

    ``failed_since`` / ``failed_before`` bound ``last_failed_at`` (since inclusive, before
    exclusive).
    """

    status: str | None = None
    kind: str | None = None
    error_type: str | None = None
    failed_since: datetime | None = None
    failed_before: datetime | None = None


@dataclass(frozen=True)
class FailedPage:
    """One page of failed tasks, most recently failed first.

    ``cursor`` is opaque: pass it back to ``page_failed`` for the next page; ``None`` on the
    last page.
    """

    entries: list["FailedTask"]
    cursor: str | None


@dataclass(frozen=True)
class FailureReport:
    """One failed attempt that will not be retried, as the handler reports it."""

    order_id: str
    kind: str
    queue: str
    task_name: str
    payload: dict[str, Any]
    error_type: str
    error: str
    attempt: int                     # 1-based attempt number (retry count + 1)
    failed_at: datetime


@dataclass(frozen=True)
class FailedTask:
    """Failed-task log entry ``failed_tasks/{order_id}:{kind}`` (flat, console-readable)."""

    id: str
    order_id: str
    kind: str
    queue: str
    task_name: str
    payload: dict[str, Any]
    error_type: str
    error: str
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime
    status: str                      # a FailedStatus
    history: list[dict[str, Any]]
    resolved_by: str | None = None
    note: str | None = None
    replays: int = 0
    # Set when the entry is resolved (its error text may hold personal data): Firestore's TTL
    # deletes it after this time; re-opened entries clear it. ``None`` while it needs a person.
    expire_at: datetime | None = None


@dataclass(frozen=True)
class AnalyticsFact:
    """One order as analytics counts it (``analytics_orders/{order_id}``)."""

    order_id: str
    day: date
    currency: str
    revenue_minor: int               # total in minor units (cents)
    units: dict[str, int]            # sku -> units
    recorded_at: datetime


@dataclass(frozen=True)
class DailyAggregate:
    """Sum of a day's shard documents."""

    day: date
    orders: int
    revenue_minor: dict[str, int]    # currency -> minor units
    units: dict[str, int]            # sku -> units


@dataclass(frozen=True)
class OutboxEntry:
    """One effect an order owes: the task the producer owes Cloud Tasks, and the ledger's
    view of it (the auditor's next look, its re-creations, the terminal state it found)."""

    order_id: str
    kind: str
    task_name: str
    schedule_time: datetime
    state: str                       # an OutboxState
    created_at: datetime
    scheduled_at: datetime | None = None
    # When the auditor next looks at this effect (past the queue's whole retry span); ``None``
    # once settled, and for entries written before the ledger existed.
    audit_at: datetime | None = None
    audits: int = 0                  # tasks the auditor created again (``…-a<N>``)
    settled: str | None = None       # a ``Settled`` once the auditor found it terminal


@dataclass(frozen=True)
class AuditChange:
    """One compare-and-set of an owed effect's ledger fields (``OrderStore.update_audits``):
    only while its ``audit_at`` still equals ``expect_audit_at``; ``audits`` and ``settled``
    change only when given."""

    kind: str
    expect_audit_at: datetime
    audit_at: datetime | None
    audits: int | None = None
    settled: str | None = None


@dataclass(frozen=True)
class OrderRecord:
    """An order as the checkout API stores it."""

    order_id: str
    status: str                      # an OrderStatus
    snapshot: dict[str, Any]         # handlers.contract.OrderSnapshot as JSON
    created_at: datetime
    charge_id: str | None = None
    paid_at: datetime | None = None


@dataclass(frozen=True)
class CheckoutReplay:
    """A stored answer to an ``Idempotency-Key`` checkout request."""

    key: str
    request_hash: str
    order_id: str
    status_code: int | None          # None while the first request is still running
    response: dict[str, Any] | None
    created_at: datetime


# --- ports ------------------------------------------------------------------------------


class Clock(Protocol):
    """Time, injected so tests can control it."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


@runtime_checkable
class EffectStore(Protocol):
    """Idempotency records: claim an effect before running it, mark it done after.

    Claiming is atomic (a transaction or a create precondition, never check-then-set):
    of N concurrent ``claim_effect`` calls for one key exactly one gets ``CLAIMED``.
    """

    def claim_effect(self, order_id: str, kind: str, now: datetime, lease_seconds: float,
                     ttl_seconds: float) -> Claim:
        """Take the lease on ``(order_id, kind)``.

        No record, or ``in_progress`` with an expired lease → ``CLAIMED`` (attempts + 1, lease
        until ``now + lease_seconds``, ``expire_at = now + ttl_seconds``). ``done`` → ``DONE``.
        ``in_progress`` with a live lease → ``LEASED``. Raises ``DependencyUnavailable``.
        A record whose ``expire_at`` has passed counts as absent (TTL deletion lags).
        A ``DONE`` answer also counts the absorbed delivery in ``duplicates`` (best effort).
        """
        ...

    def cancel_effect(self, order_id: str, kind: str, now: datetime, ttl_seconds: float) -> ClaimState:
        """Record that the effect must never run, atomically with respect to ``claim_effect``.

        Returns ``CANCELLED`` (recorded now or before: no later claim succeeds), ``DONE`` (it
        already happened) or ``LEASED`` (a delivery holds a live lease: the effect is in
        flight and may still happen). Raises ``DependencyUnavailable`` when the store is down.
        """
        ...

    def complete_effect(self, order_id: str, kind: str, result: dict[str, Any], now: datetime, *,
                        duplicate: bool = False) -> None:
        """Mark the effect ``done`` with its result; later claims return ``DONE``.

        No record yet (a create-once effect found at its far end) → one is created ``done``.
        ``duplicate`` also counts the delivery that found it done in ``duplicates``.
        """
        ...

    def release_effect(self, order_id: str, kind: str, now: datetime, failure: AttemptFailure | None = None) -> None:
        """Give the lease back after a failure so the next delivery may claim at once.

        Keeps ``attempts`` and ``first_attempt_at``; a ``done`` or ``cancelled`` record is left
        untouched. With ``failure``, the same single write also records it: ``attempt``,
        ``max_attempts``, ``last_error``, ``next_attempt_at`` and the state ``retrying`` (an
        attempt follows) or ``failed`` (``failure.final``). With ``failure`` and no record
        (the attempt failed before it could claim) one is created in that state,
        ``attempts`` 0, ``expire_at = now + failure.ttl_seconds``. The caller holds the lease
        (or never claimed). A later claim takes a ``retrying`` or ``failed`` record like a
        released one (``in_progress`` again, the failure fields kept).
        """
        ...

    def get_effect(self, order_id: str, kind: str) -> EffectRecord | None:
        """The record, or ``None``."""
        ...

    def effect_counts(self) -> dict[str, dict[str, int]]:
        """kind → {"done": n, "in_progress": n, "duplicates": n, and n per other state found} over all records.

        Reads every record: for small stores and tests. Operators' tools use
        ``count_effects`` and ``duplicates_absorbed``, which are aggregation queries.
        """
        ...

    def count_effects(self, kind: str, state: str | None = None, updated_since: datetime | None = None) -> int:
        """How many records of ``kind`` (in ``state``, updated at or after ``updated_since``).

        An aggregation (SQL ``COUNT``, Firestore ``count()``): never reads the records.
        """
        ...

    def duplicates_absorbed(self, kind: str) -> int:
        """Sum of ``duplicates`` over the records of ``kind`` (SQL ``SUM``, Firestore ``sum()``)."""
        ...


@runtime_checkable
class AttemptLog(Protocol):
    """Every delivery's outcome and duration: an order's attempts, and per-minute tallies per kind.

    Written once per delivery by the handler (best effort: a failed write never changes the
    delivery's answer), read by the console. Cheap on both sides: ``record_attempt`` is one
    write of the backend (Firestore: one commit of two documents, the attempt and an
    increment of one shard of its kind's minute); ``attempts_for`` is one indexed query on
    ``order_id``; ``minute_tallies`` reads only the minutes asked for, never the attempts
    themselves on Firestore. Raises ``DependencyUnavailable`` when the store cannot be reached.
    """

    def record_attempt(self, attempt: AttemptRecord) -> None:
        """Keep ``attempt`` (until its ``expire_at``) and count it in the minute of its
        ``finished_at``: one more of its outcome and, for ``TIMED_OUTCOMES``, its duration's bucket."""
        ...

    def attempts_for(self, order_id: str, limit: int = 500) -> list[AttemptRecord]:
        """The order's attempts (every kind), oldest ``started_at`` first, at most ``limit``;
        attempts past their ``expire_at`` may still show until the TTL deletes them."""
        ...

    def minute_tallies(self, since: datetime, until: datetime) -> list[MinuteTally]:
        """One tally per kind and minute that had attempts finishing in ``[since, until)``,
        ordered by minute then kind (shards and rows of one minute summed). ``since`` and
        ``until`` are rounded down to the minute."""
        ...


@runtime_checkable
class FailedTaskStore(Protocol):
    """The failed-task log that operators triage (Firestore console or CLI)."""

    def record_failure(self, report: FailureReport) -> FailedTask:
        """Create ``{order_id}:{kind}`` or append to it, atomically.

        New → status ``open``, ``first_failed_at = last_failed_at = failed_at``, one history
        entry. Existing → history appended, ``last_failed_at``, ``error``, ``error_type``,
        ``attempts``, ``task_name`` updated, status back to ``open``. Raises
        ``DependencyUnavailable`` when it cannot write: the caller then answers 503.
        """
        ...

    def get_failed(self, failed_id: str) -> FailedTask | None:
        """The entry, or ``None``."""
        ...

    def list_failed(self, status: str | None = None, kind: str | None = None, limit: int = 100) -> list[FailedTask]:
        """Entries filtered by status and kind, most recently failed first."""
        ...

    def update_failed(self, failed_id: str, status: str, now: datetime, *, expect_status: str | None = None,
                      resolved_by: str | None = None, note: str | None = None, count_replay: bool = False,
                      retention_seconds: float = FAILED_RETENTION_SECONDS) -> FailedTask | None:
        """Set ``status`` (and ``resolved_by``/``note`` when given); return the new entry.

        With ``expect_status`` the change happens only if the current status equals it
        (compare-and-set, so two sweepers never replay one entry twice); otherwise returns
        ``None``. ``count_replay`` increments ``replays``. Unknown id → ``None``.
        ``resolved`` sets ``expire_at = now + retention_seconds``; any other status clears it.
        """
        ...

    def resolve_failed(self, failed_id: str, now: datetime, *, resolved_by: str, note: str,
                       retention_seconds: float = FAILED_RETENTION_SECONDS) -> FailedTask | None:
        """Close an entry whose effect has since happened; return it, or ``None`` if nothing changed.

        An entry that is ``open``, ``replay_requested`` or ``replayed`` becomes ``resolved``
        with ``resolved_by``, ``note`` and ``expire_at = now + retention_seconds``, atomically; a ``resolved`` or unknown entry is left
        alone (``None``). The handler calls this after every success of ``(order_id, kind)``,
        so the common case (no entry) must cost no write.
        """
        ...

    def count_failed(self, where: FailedFilter) -> int:
        """How many entries match ``where``: an aggregation query, never a read of each entry."""
        ...

    def page_failed(self, where: FailedFilter, limit: int = 50, cursor: str | None = None) -> FailedPage:
        """Up to ``limit`` entries matching ``where``, most recently failed first (ties: id
        descending), starting after ``cursor``; an indexed query that reads only the page.

        An unknown or malformed cursor raises ``ValueError``.
        """
        ...

    def failed_error_types(self, limit: int = 50) -> list[str]:
        """The distinct ``error_type`` values in the log, sorted, at most ``limit`` of them.

        One indexed seek per value (the next type after the last one found), so the cost is
        ``limit`` reads at most, never a read of each entry.
        """
        ...


@runtime_checkable
class AnalyticsStore(Protocol):
    """Per-order analytics facts and the sharded daily aggregate."""

    def record_order_fact(self, fact: AnalyticsFact, shard: int) -> bool:
        """In ONE transaction: create the fact and add it to shard ``shard`` of its day.

        Returns ``True`` when the fact was new, ``False`` when it already existed (then the
        aggregate is untouched: retries and duplicates never double-count).
        """
        ...

    def get_fact(self, order_id: str) -> AnalyticsFact | None:
        """The fact recorded for an order, or ``None``."""
        ...

    def count_facts(self, recorded_since: datetime | None = None) -> int:
        """How many facts (recorded at or after ``recorded_since``): an aggregation (SQL
        ``COUNT``, Firestore ``count()``), never a read of each fact."""
        ...

    def daily_aggregate(self, day: date) -> DailyAggregate:
        """The day's totals: the sum over all shard documents (zeros when none)."""
        ...


@runtime_checkable
class BlobStore(Protocol):
    """Write-once object storage (a GCS bucket or a local directory)."""

    def put_once(self, path: str, data: bytes, content_type: str) -> bool:
        """Create ``path`` with ``data`` unless it exists. ``True`` if written now, ``False``
        if it already existed (content untouched). Never a partially written object."""
        ...

    def get(self, path: str) -> bytes | None:
        """The object's bytes, or ``None``."""
        ...

    def created_at(self, path: str) -> datetime | None:
        """When ``path`` was created, or ``None`` if it does not exist (metadata only: no bytes read)."""
        ...

    def count(self, prefix: str, created_since: datetime | None = None) -> int:
        """How many objects under ``prefix`` (created at or after ``created_since``).

        A listing (GCS: one request per 1000 objects): for operators' counts, not hot paths.
        """
        ...


class Mailer(Protocol):
    """Sends one email message."""

    def send(self, message: Any) -> None:
        """Deliver an ``email.message.EmailMessage``. Raises ``DependencyUnavailable`` when the
        relay is down or answers 4xx-temporary, ``Rejected`` when it refuses for good."""
        ...


class WebhookClient(Protocol):
    """One kind's HTTP endpoint (a webhook kind, e.g. the warehouse's notification API)."""

    def post(self, idempotency_key: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST ``payload`` as JSON with ``Idempotency-Key``. 2xx or 409 → returns a result.
        Other 4xx → ``Rejected``; 429 → ``Throttled``; 5xx/timeout/connection → ``DependencyUnavailable``."""
        ...


WarehouseClient = WebhookClient


@runtime_checkable
class OrderStore(Protocol):
    """Orders, their outbox and checkout idempotency keys (the producer's store)."""

    def create_order(self, order: OrderRecord) -> bool:
        """Insert the order; ``False`` if the id exists (nothing changed)."""
        ...

    def get_order(self, order_id: str) -> OrderRecord | None:
        """The order, or ``None``."""
        ...

    def mark_paid(self, order_id: str, charge_id: str, outbox: list[OutboxEntry], now: datetime) -> bool:
        """In one transaction: status ``paid``, ``charge_id``, ``paid_at``, and the outbox
        entries (existing entries for the same kind are kept as they are). A ``cancelled``
        order is left as it is and ``False`` returned (a cancel that won the race is never undone);
        ``True`` when the order is paid."""
        ...

    def mark_payment_failed(self, order_id: str, now: datetime) -> None:
        """Status ``payment_failed``."""
        ...

    def mark_cancelled(self, order_id: str, now: datetime) -> None:
        """Status ``cancelled`` (kept by later calls: a cancelled order is never paid again).
        Unknown order → ``KeyError``."""
        ...

    def mark_scheduled(self, order_id: str, kind: str, now: datetime) -> None:
        """Outbox entry → ``scheduled`` with ``scheduled_at``."""
        ...

    def mark_scheduled_many(self, order_id: str, kinds: list[str], now: datetime) -> None:
        """``mark_scheduled`` for each of ``kinds``, all or nothing, in as few writes as the
        backend allows (Firestore: one). An unknown entry → ``KeyError``, nothing changed."""
        ...

    def outbox_for(self, order_id: str) -> list[OutboxEntry]:
        """The order's outbox entries, in kind order of creation."""
        ...

    def pending_outbox(self, created_before: datetime, limit: int = 500) -> list[OutboxEntry]:
        """Pending entries created before ``created_before``, oldest first."""
        ...

    def due_audits(self, now: datetime, limit: int = 500) -> list[OutboxEntry]:
        """Entries not settled whose ``audit_at`` is at or before ``now``, earliest ``audit_at``
        first, at most ``limit``: an indexed range query, never a scan of settled entries."""
        ...

    def update_audit(self, order_id: str, kind: str, expect_audit_at: datetime, *, audit_at: datetime | None,
                     audits: int | None = None, settled: str | None = None) -> bool:
        """Compare-and-set the entry's ledger fields: only while its ``audit_at`` still equals
        ``expect_audit_at`` (so of two auditors that read the same entry one wins) set
        ``audit_at`` (``None``: no more audits), ``audits`` and ``settled`` when given.

        ``True`` when written; ``False`` when the entry changed meanwhile or does not exist.
        """
        ...

    def update_audits(self, order_id: str, changes: list[AuditChange]) -> set[str]:
        """``update_audit`` for several entries of one order in as few writes as the backend
        allows (Firestore: one); the kinds whose change was written (each compared on its own)."""
        ...

    def reserve_checkout(self, key: str, request_hash: str, order_id: str, now: datetime) -> CheckoutReplay | None:
        """Atomically reserve an ``Idempotency-Key`` for a new order.

        ``None`` when the key is new (now reserved for ``order_id``); otherwise the existing
        reservation (with its stored response once ``finish_checkout`` ran)."""
        ...

    def finish_checkout(self, key: str, status_code: int, response: dict[str, Any]) -> None:
        """Store the response to replay for later requests with the same key."""
        ...

    def orders_by_email(self, email: str, limit: int = 20) -> list[OrderRecord]:
        """Orders whose snapshot's ``customer.email`` equals ``email`` exactly, newest first
        (``created_at`` descending), at most ``limit``; an indexed query."""
        ...

    def recent_orders(self, limit: int = 20) -> list[OrderRecord]:
        """The ``limit`` most recently created orders, newest first."""
        ...


# --- the store ports of one backend ----------------------------------------------------


@dataclass(frozen=True)
class Stores:
    """One object per store port, each typed by its port.

    Every store backend builds one (``handlers.backends.memory.stores()``,
    ``handlers.backends.sqlite.stores(db)``, ``handlers.backends.firestore.stores(db)``); the
    wiring (``handlers.wiring.build_stores``) picks the backend from the settings.
    """

    effects: EffectStore
    failed: FailedTaskStore
    analytics: AnalyticsStore
    orders: OrderStore
    attempts: AttemptLog

    @classmethod
    def over(cls, backend: "Stores") -> "Stores":
        """The ports of ``backend`` as a plain ``Stores`` (kept for callers from before every
        backend's store object was itself a ``Stores``, e.g. ``Stores.over(SqliteStore(path))``)."""
        return cls(effects=backend.effects, failed=backend.failed, analytics=backend.analytics, orders=backend.orders,
                   attempts=backend.attempts)
