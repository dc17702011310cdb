"""In-memory stores, and the state transitions every store backend applies.

The rules of the store ports (when a claim wins, how a failure is appended, what a status
change may do, how a fact adds to a shard) live here once, as pure functions from "record
as found" to "record to write". Each backend runs them inside its own atomic step: a lock
here, ``BEGIN IMMEDIATE`` in SQLite, a precondition-guarded commit in Firestore. So the
backends differ only in how they read and write, and the contract tests check that.

One class per port (``MemoryEffectStore``, ``MemoryFailedTaskStore``,
``MemoryAnalyticsStore``, ``MemoryOrderStore``, ``MemoryAttemptLog``), each with its own
dictionaries and lock: no operation of one port reads or writes another port's records (the analytics fact and
its shard change together, inside ``MemoryAnalyticsStore``; an order and its outbox inside
``MemoryOrderStore``), so the ports share nothing. ``stores()`` bundles one of each;
``MemoryStore`` is that bundle under the name it had when one class served every port.

For unit tests and single-process experiments: nothing survives the process, and a memory
store is never unavailable.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from ordertasks.handlers import attempt_stats
from ordertasks.handlers.backends import queries
from ordertasks.handlers.ports import (FAILED_RETENTION_SECONDS, FAILED_STATUSES, AnalyticsFact, AttemptFailure,
                                       AttemptRecord, AuditChange, CheckoutReplay, Claim, ClaimState, DailyAggregate,
                                       EffectRecord, EffectState, FailedFilter, FailedPage, FailedStatus, FailedTask,
                                       FailureReport, MinuteTally, OrderRecord, OrderStatus, OutboxEntry, OutboxState,
                                       Stores)

IN_PROGRESS, DONE, CANCELLED = EffectState.IN_PROGRESS, EffectState.DONE, EffectState.CANCELLED
RETRYING, FAILED = EffectState.RETRYING, EffectState.FAILED
HISTORY_LIMIT = 100              # keeps a failed-task document far below Firestore's 1 MiB
ORPHAN_DONE_TTL = timedelta(days=30)   # TTL of a done record whose claim had already expired

# --- transitions shared by every backend ------------------------------------------------


def claim_transition(found: EffectRecord | None, order_id: str, kind: str, now: datetime,
                     lease_seconds: float, ttl_seconds: float) -> Claim:
    """Decide a claim on the record as found; a ``CLAIMED`` record must then be written."""
    if found is not None and found.expire_at <= now:
        found = None                 # past its TTL: deletion is only pending, treat as absent
    lease, expire = now + timedelta(seconds=lease_seconds), now + timedelta(seconds=ttl_seconds)
    if found is None:
        return Claim(ClaimState.CLAIMED, EffectRecord(order_id, kind, IN_PROGRESS, 1, lease, now, now, expire))
    if found.state == DONE:
        return Claim(ClaimState.DONE, found)
    if found.state == CANCELLED:
        return Claim(ClaimState.CANCELLED, found)
    if found.lease_expires_at is not None and found.lease_expires_at > now:
        return Claim(ClaimState.LEASED, found)
    taken = replace(found, state=IN_PROGRESS, attempts=found.attempts + 1, lease_expires_at=lease, updated_at=now,
                    expire_at=expire)
    return Claim(ClaimState.CLAIMED, taken)


def cancel_transition(found: EffectRecord | None, order_id: str, kind: str, now: datetime,
                      ttl_seconds: float) -> tuple[ClaimState, EffectRecord | None]:
    """Decide a cancellation on the record as found: the state, and the record to write if any."""
    if found is not None and found.expire_at <= now:
        found = None
    if found is None:
        expire = now + timedelta(seconds=ttl_seconds)
        return ClaimState.CANCELLED, EffectRecord(order_id, kind, CANCELLED, 0, None, now, now, expire)
    if found.state == DONE:
        return ClaimState.DONE, None
    if found.state == CANCELLED:
        return ClaimState.CANCELLED, None
    if found.lease_expires_at is not None and found.lease_expires_at > now:
        return ClaimState.LEASED, None
    return ClaimState.CANCELLED, replace(found, state=CANCELLED, lease_expires_at=None, updated_at=now)


def tally_effects(rows: Any) -> dict[str, dict[str, int]]:
    """kind → {done, in_progress, duplicates} from (kind, state, duplicates) rows."""
    counts: dict[str, dict[str, int]] = {}
    for kind, state, duplicates in rows:
        entry = counts.setdefault(kind, {DONE: 0, IN_PROGRESS: 0, "duplicates": 0})
        entry[state] = entry.get(state, 0) + 1
        entry["duplicates"] += int(duplicates or 0)
    return counts


def completed(found: EffectRecord | None, order_id: str, kind: str, result: dict[str, Any],
              now: datetime, duplicate: bool = False) -> EffectRecord:
    """The record marked ``done`` (one more absorbed delivery with ``duplicate``); the claim's TTL is kept."""
    if found is None:
        return EffectRecord(order_id, kind, DONE, 1, None, now, now, now + ORPHAN_DONE_TTL, dict(result),
                            duplicates=int(duplicate))
    return replace(found, state=DONE, lease_expires_at=None, updated_at=now, result=dict(result),
                   duplicates=found.duplicates + int(duplicate))


def released(found: EffectRecord | None, now: datetime, failure: AttemptFailure | None = None,
             order_id: str = "", kind: str = "") -> EffectRecord | None:
    """The record with its lease given back (and ``failure`` recorded), or ``None`` when there
    is nothing to change (see ``EffectStore.release_effect``)."""
    if found is None and failure is not None:
        found = EffectRecord(order_id, kind, IN_PROGRESS, 0, None, now, now,
                             now + timedelta(seconds=failure.ttl_seconds))
    if found is None or found.state in (DONE, CANCELLED):
        return None
    if failure is None:
        return replace(found, lease_expires_at=None, updated_at=now)
    return replace(found, state=FAILED if failure.final else RETRYING, lease_expires_at=None, updated_at=now,
                   attempt=failure.attempt, max_attempts=failure.max_attempts, last_error=failure.error,
                   next_attempt_at=failure.next_attempt_at)


def history_entry(report: FailureReport) -> dict[str, Any]:
    """One element of ``FailedTask.history``."""
    return {"attempt": report.attempt, "failed_at": report.failed_at, "error_type": report.error_type,
            "error": report.error, "task_name": report.task_name}


def failure_appended(found: FailedTask | None, report: FailureReport) -> FailedTask:
    """The failed-task entry after ``report``: created ``open``, or appended and re-opened.

    An entry past its ``expire_at`` counts as gone (TTL deletion lags): the new failure
    starts a fresh entry rather than reviving the old one's history."""
    entry = history_entry(report)
    if found is not None and found.expire_at is not None and found.expire_at <= report.failed_at:
        found = None
    if found is None:
        return FailedTask(f"{report.order_id}:{report.kind}", report.order_id, report.kind, report.queue,
                          report.task_name, dict(report.payload), report.error_type, report.error,
                          report.attempt, report.failed_at, report.failed_at, FailedStatus.OPEN, [entry])
    return replace(found, history=[*found.history, entry][-HISTORY_LIMIT:], last_failed_at=report.failed_at,
                   error=report.error, error_type=report.error_type, attempts=report.attempt,
                   task_name=report.task_name, status=FailedStatus.OPEN, expire_at=None)


def expiry(status: str, now: datetime, retention_seconds: float) -> datetime | None:
    """When an entry with ``status`` may be deleted: resolved ones after the retention, others never."""
    return now + timedelta(seconds=retention_seconds) if status == FailedStatus.RESOLVED else None


def status_changed(found: FailedTask | None, status: str, expect_status: str | None,
                   resolved_by: str | None, note: str | None, count_replay: bool,
                   now: datetime, retention_seconds: float) -> FailedTask | None:
    """The entry with its new status, or ``None`` (unknown entry, or compare-and-set lost)."""
    if status not in FAILED_STATUSES:
        raise ValueError(f"unknown failed-task status {status!r}; use one of {', '.join(FAILED_STATUSES)}")
    if found is None or (expect_status is not None and found.status != expect_status):
        return None
    return replace(found, status=status, resolved_by=resolved_by if resolved_by is not None else found.resolved_by,
                   note=note if note is not None else found.note, replays=found.replays + int(count_replay),
                   expire_at=expiry(status, now, retention_seconds))


def resolved_on_success(found: FailedTask | None, resolved_by: str, note: str,
                        now: datetime, retention_seconds: float) -> FailedTask | None:
    """The entry closed because its effect has happened, or ``None`` (absent, already resolved)."""
    if found is None or found.status == FailedStatus.RESOLVED:
        return None
    return replace(found, status=FailedStatus.RESOLVED, resolved_by=resolved_by, note=note,
                   expire_at=expiry(FailedStatus.RESOLVED, now, retention_seconds))


def empty_totals(day: date) -> DailyAggregate:
    """A shard (or day) with nothing counted yet."""
    return DailyAggregate(day, 0, {}, {})


def _summed(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {key: a.get(key, 0) + b.get(key, 0) for key in a.keys() | b.keys()}


def totals_merged(a: DailyAggregate, b: DailyAggregate) -> DailyAggregate:
    """Two shards (or a shard and a running sum) added together."""
    return DailyAggregate(a.day, a.orders + b.orders, _summed(a.revenue_minor, b.revenue_minor), _summed(a.units, b.units))


def fact_added(totals: DailyAggregate, fact: AnalyticsFact) -> DailyAggregate:
    """A shard after counting one more order."""
    return totals_merged(totals, DailyAggregate(fact.day, 1, {fact.currency: fact.revenue_minor}, dict(fact.units)))


def new_outbox_entries(existing: list[OutboxEntry], wanted: list[OutboxEntry]) -> list[OutboxEntry]:
    """The entries of ``wanted`` whose kind has no entry yet (existing ones are kept as they are)."""
    seen = {entry.kind for entry in existing}
    fresh = []
    for entry in wanted:
        if entry.kind not in seen:
            seen.add(entry.kind)
            fresh.append(entry)
    return fresh


def scheduled(entry: OutboxEntry, now: datetime) -> OutboxEntry:
    """An outbox entry after its task was accepted by Cloud Tasks."""
    return replace(entry, state=OutboxState.SCHEDULED, scheduled_at=now)


def audit_applied(entry: OutboxEntry, change: AuditChange) -> OutboxEntry | None:
    """The entry after an audit change, or ``None`` when its ``audit_at`` moved on (a lost race)."""
    if entry.audit_at != change.expect_audit_at:
        return None
    return replace(entry, audit_at=change.audit_at, audits=entry.audits if change.audits is None else change.audits,
                   settled=entry.settled if change.settled is None else change.settled)


def audit_order(entries: list[OutboxEntry], limit: int) -> list[OutboxEntry]:
    """Due entries earliest ``audit_at`` first (ties by key, as the stores' indexes order them)."""
    return sorted(entries, key=lambda e: (e.audit_at, f"{e.order_id}:{e.kind}"))[:limit]


def newest_failed_first(entries: list[FailedTask]) -> list[FailedTask]:
    """Most recently failed first; ties by id, descending (as Firestore orders them)."""
    return sorted(entries, key=lambda task: (task.last_failed_at, task.id), reverse=True)


# --- the in-memory stores ---------------------------------------------------------------


class MemoryEffectStore:
    """``EffectStore`` in a dictionary behind a lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._effects: dict[tuple[str, str], EffectRecord] = {}

    def claim_effect(self, order_id: str, kind: str, now: datetime, lease_seconds: float,
                     ttl_seconds: float) -> Claim:
        """See ``EffectStore.claim_effect``."""
        with self._lock:
            claim = claim_transition(self._effects.get((order_id, kind)), order_id, kind, now, lease_seconds, ttl_seconds)
            if claim.state is ClaimState.CLAIMED:
                self._effects[(order_id, kind)] = claim.record
            elif claim.state is ClaimState.DONE:
                self._effects[(order_id, kind)] = replace(claim.record, duplicates=claim.record.duplicates + 1)
            return claim

    def cancel_effect(self, order_id: str, kind: str, now: datetime, ttl_seconds: float) -> ClaimState:
        """See ``EffectStore.cancel_effect``."""
        with self._lock:
            state, record = cancel_transition(self._effects.get((order_id, kind)), order_id, kind, now, ttl_seconds)
            if record is not None:
                self._effects[(order_id, kind)] = record
            return state

    def effect_counts(self) -> dict[str, dict[str, int]]:
        """See ``EffectStore.effect_counts``."""
        with self._lock:
            return tally_effects((r.kind, r.state, r.duplicates) for r in self._effects.values())

    def complete_effect(self, order_id: str, kind: str, result: dict[str, Any], now: datetime, *,
                        duplicate: bool = False) -> None:
        """See ``EffectStore.complete_effect``."""
        with self._lock:
            found = self._effects.get((order_id, kind))
            self._effects[(order_id, kind)] = completed(found, order_id, kind, result, now, duplicate)

    def release_effect(self, order_id: str, kind: str, now: datetime, failure: AttemptFailure | None = None) -> None:
        """See ``EffectStore.release_effect``."""
        with self._lock:
            record = released(self._effects.get((order_id, kind)), now, failure, order_id, kind)
            if record is not None:
                self._effects[(order_id, kind)] = record

    def get_effect(self, order_id: str, kind: str) -> EffectRecord | None:
        """See ``EffectStore.get_effect``."""
        with self._lock:
            return self._effects.get((order_id, kind))

    def count_effects(self, kind: str, state: str | None = None, updated_since: datetime | None = None) -> int:
        """See ``EffectStore.count_effects``."""
        with self._lock:
            return sum(1 for r in self._effects.values() if r.kind == kind and state in (None, r.state)
                       and (updated_since is None or r.updated_at >= updated_since))

    def duplicates_absorbed(self, kind: str) -> int:
        """See ``EffectStore.duplicates_absorbed``."""
        with self._lock:
            return sum(r.duplicates for r in self._effects.values() if r.kind == kind)


class MemoryFailedTaskStore:
    """``FailedTaskStore`` in a dictionary behind a lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._failed: dict[str, FailedTask] = {}

    def record_failure(self, report: FailureReport) -> FailedTask:
        """See ``FailedTaskStore.record_failure``."""
        with self._lock:
            task = failure_appended(self._failed.get(f"{report.order_id}:{report.kind}"), report)
            self._failed[task.id] = task
            return task

    def get_failed(self, failed_id: str) -> FailedTask | None:
        """See ``FailedTaskStore.get_failed``."""
        with self._lock:
            return self._failed.get(failed_id)

    def list_failed(self, status: str | None = None, kind: str | None = None, limit: int = 100) -> list[FailedTask]:
        """See ``FailedTaskStore.list_failed``."""
        with self._lock:
            matching = [task for task in self._failed.values()
                        if status in (None, task.status) and kind in (None, task.kind)]
        return newest_failed_first(matching)[:limit]

    def update_failed(self, failed_id: str, status: str, now: datetime, *, expect_status: str | None = None,
                      resolved_by: str | None = None, note: str | None = None, count_replay: bool = False,
                      retention_seconds: float = FAILED_RETENTION_SECONDS) -> FailedTask | None:
        """See ``FailedTaskStore.update_failed``."""
        with self._lock:
            task = status_changed(self._failed.get(failed_id), status, expect_status, resolved_by, note, count_replay,
                                  now, retention_seconds)
            if task is not None:
                self._failed[failed_id] = task
            return task

    def resolve_failed(self, failed_id: str, now: datetime, *, resolved_by: str, note: str,
                       retention_seconds: float = FAILED_RETENTION_SECONDS) -> FailedTask | None:
        """See ``FailedTaskStore.resolve_failed``."""
        with self._lock:
            task = resolved_on_success(self._failed.get(failed_id), resolved_by, note, now, retention_seconds)
            if task is not None:
                self._failed[failed_id] = task
            return task

    def count_failed(self, where: FailedFilter) -> int:
        """See ``FailedTaskStore.count_failed``."""
        with self._lock:
            return sum(1 for task in self._failed.values() if queries.failed_matches(task, where))

    def failed_error_types(self, limit: int = 50) -> list[str]:
        """See ``FailedTaskStore.failed_error_types``."""
        with self._lock:
            return sorted({task.error_type for task in self._failed.values()})[:limit]

    def page_failed(self, where: FailedFilter, limit: int = 50, cursor: str | None = None) -> FailedPage:
        """See ``FailedTaskStore.page_failed``."""
        position = queries.parse_failed_cursor(cursor) if cursor else None
        with self._lock:
            matching = [task for task in self._failed.values()
                        if queries.failed_matches(task, where) and queries.after_cursor(task, position)]
        ordered = newest_failed_first(matching)
        page = ordered[:limit]
        more = len(ordered) > limit
        return FailedPage(page, queries.failed_cursor(page[-1]) if more and page else None)


class MemoryAnalyticsStore:
    """``AnalyticsStore``: facts and shards in dictionaries behind one lock (one atomic step each)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._facts: dict[str, AnalyticsFact] = {}
        self._shards: dict[tuple[date, int], DailyAggregate] = {}

    def record_order_fact(self, fact: AnalyticsFact, shard: int) -> bool:
        """See ``AnalyticsStore.record_order_fact``."""
        with self._lock:
            if fact.order_id in self._facts:
                return False
            self._facts[fact.order_id] = fact
            key = (fact.day, shard)
            self._shards[key] = fact_added(self._shards.get(key, empty_totals(fact.day)), fact)
            return True

    def get_fact(self, order_id: str) -> AnalyticsFact | None:
        """See ``AnalyticsStore.get_fact``."""
        with self._lock:
            return self._facts.get(order_id)

    def count_facts(self, recorded_since: datetime | None = None) -> int:
        """See ``AnalyticsStore.count_facts``."""
        with self._lock:
            return sum(1 for f in self._facts.values() if recorded_since is None or f.recorded_at >= recorded_since)

    def daily_aggregate(self, day: date) -> DailyAggregate:
        """See ``AnalyticsStore.daily_aggregate``."""
        total = empty_totals(day)
        with self._lock:
            for (shard_day, _), shard in self._shards.items():
                if shard_day == day:
                    total = totals_merged(total, shard)
        return total


class MemoryAttemptLog:
    """``AttemptLog``: the attempts in a list behind a lock; tallies are computed from them."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._attempts: list[AttemptRecord] = []

    def record_attempt(self, attempt: AttemptRecord) -> None:
        """See ``AttemptLog.record_attempt``."""
        with self._lock:
            self._attempts.append(attempt)

    def attempts_for(self, order_id: str, limit: int = 500) -> list[AttemptRecord]:
        """See ``AttemptLog.attempts_for``."""
        with self._lock:
            found = [a for a in self._attempts if a.order_id == order_id]
        return sorted(found, key=lambda a: (a.started_at, a.kind))[:limit]

    def minute_tallies(self, since: datetime, until: datetime) -> list[MinuteTally]:
        """See ``AttemptLog.minute_tallies``."""
        with self._lock:
            attempts = list(self._attempts)
        return attempt_stats.within((attempt_stats.tally_of(a) for a in attempts), since, until)


class MemoryOrderStore:
    """``OrderStore``: orders, their outbox and checkout keys in dictionaries behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._orders: dict[str, OrderRecord] = {}
        self._outbox: dict[str, list[OutboxEntry]] = {}
        self._checkouts: dict[str, CheckoutReplay] = {}

    def create_order(self, order: OrderRecord) -> bool:
        """See ``OrderStore.create_order``."""
        with self._lock:
            if order.order_id in self._orders:
                return False
            self._orders[order.order_id] = order
            return True

    def get_order(self, order_id: str) -> OrderRecord | None:
        """See ``OrderStore.get_order``."""
        with self._lock:
            return self._orders.get(order_id)

    def _order(self, order_id: str) -> OrderRecord:
        if order_id not in self._orders:
            raise KeyError(f"order {order_id} does not exist; create_order first")
        return self._orders[order_id]

    def mark_paid(self, order_id: str, charge_id: str, outbox: list[OutboxEntry], now: datetime) -> bool:
        """See ``OrderStore.mark_paid``; unknown order → ``KeyError``."""
        with self._lock:
            if self._order(order_id).status == OrderStatus.CANCELLED:
                return False                # a cancel that won the race is never undone
            self._orders[order_id] = replace(self._order(order_id), status=OrderStatus.PAID, charge_id=charge_id,
                                            paid_at=now)
            existing = self._outbox.setdefault(order_id, [])
            existing.extend(new_outbox_entries(existing, outbox))
            return True

    def mark_payment_failed(self, order_id: str, now: datetime) -> None:
        """See ``OrderStore.mark_payment_failed``; unknown order → ``KeyError``."""
        with self._lock:
            self._orders[order_id] = replace(self._order(order_id), status=OrderStatus.PAYMENT_FAILED)

    def mark_cancelled(self, order_id: str, now: datetime) -> None:
        """See ``OrderStore.mark_cancelled``; unknown order → ``KeyError``."""
        with self._lock:
            self._orders[order_id] = replace(self._order(order_id), status=OrderStatus.CANCELLED)

    def mark_scheduled(self, order_id: str, kind: str, now: datetime) -> None:
        """See ``OrderStore.mark_scheduled``; unknown entry → ``KeyError``."""
        with self._lock:
            entries = self._outbox.get(order_id, [])
            index = next((i for i, entry in enumerate(entries) if entry.kind == kind), None)
            if index is None:
                raise KeyError(f"order {order_id} has no outbox entry {kind}")
            entries[index] = scheduled(entries[index], now)

    def mark_scheduled_many(self, order_id: str, kinds: list[str], now: datetime) -> None:
        """See ``OrderStore.mark_scheduled_many``; an unknown entry → ``KeyError``, nothing changed."""
        with self._lock:
            entries = self._outbox.get(order_id, [])
            if missing := set(kinds) - {entry.kind for entry in entries}:
                raise KeyError(f"order {order_id} has no outbox entry {', '.join(sorted(missing))}")
            self._outbox[order_id] = [scheduled(e, now) if e.kind in kinds else e for e in entries]

    def outbox_for(self, order_id: str) -> list[OutboxEntry]:
        """See ``OrderStore.outbox_for``."""
        with self._lock:
            return list(self._outbox.get(order_id, []))

    def pending_outbox(self, created_before: datetime, limit: int = 500) -> list[OutboxEntry]:
        """See ``OrderStore.pending_outbox``."""
        with self._lock:
            pending = [entry for entries in self._outbox.values() for entry in entries
                       if entry.state == OutboxState.PENDING and entry.created_at < created_before]
        return sorted(pending, key=lambda entry: (entry.created_at, f"{entry.order_id}:{entry.kind}"))[:limit]

    def due_audits(self, now: datetime, limit: int = 500) -> list[OutboxEntry]:
        """See ``OrderStore.due_audits``."""
        with self._lock:
            due = [entry for entries in self._outbox.values() for entry in entries
                   if entry.settled is None and entry.audit_at is not None and entry.audit_at <= now]
        return audit_order(due, limit)

    def update_audit(self, order_id: str, kind: str, expect_audit_at: datetime, *, audit_at: datetime | None,
                     audits: int | None = None, settled: str | None = None) -> bool:
        """See ``OrderStore.update_audit``."""
        return kind in self.update_audits(order_id, [AuditChange(kind, expect_audit_at, audit_at, audits, settled)])

    def update_audits(self, order_id: str, changes: list[AuditChange]) -> set[str]:
        """See ``OrderStore.update_audits``."""
        with self._lock:
            entries = self._outbox.get(order_id, [])
            by_kind = {entry.kind: i for i, entry in enumerate(entries)}
            written = set()
            for change in changes:
                found = by_kind.get(change.kind)
                changed = None if found is None else audit_applied(entries[found], change)
                if found is not None and changed is not None:
                    entries[found] = changed
                    written.add(change.kind)
            return written

    def reserve_checkout(self, key: str, request_hash: str, order_id: str, now: datetime) -> CheckoutReplay | None:
        """See ``OrderStore.reserve_checkout``."""
        with self._lock:
            if key in self._checkouts:
                return self._checkouts[key]
            self._checkouts[key] = CheckoutReplay(key, request_hash, order_id, None, None, now)
            return None

    def finish_checkout(self, key: str, status_code: int, response: dict[str, Any]) -> None:
        """See ``OrderStore.finish_checkout``; unknown key → ``KeyError``."""
        with self._lock:
            if key not in self._checkouts:
                raise KeyError(f"checkout key {key!r} was never reserved")
            self._checkouts[key] = replace(self._checkouts[key], status_code=status_code, response=dict(response))

    def orders_by_email(self, email: str, limit: int = 20) -> list[OrderRecord]:
        """See ``OrderStore.orders_by_email``."""
        with self._lock:
            found = [o for o in self._orders.values() if queries.customer_email(o) == email]
        return sorted(found, key=lambda o: (o.created_at, o.order_id), reverse=True)[:limit]

    def recent_orders(self, limit: int = 20) -> list[OrderRecord]:
        """See ``OrderStore.recent_orders``."""
        with self._lock:
            return sorted(self._orders.values(), key=lambda o: (o.created_at, o.order_id), reverse=True)[:limit]


def stores() -> Stores:
    """A fresh, empty memory store for each port."""
    return Stores(effects=MemoryEffectStore(), failed=MemoryFailedTaskStore(), analytics=MemoryAnalyticsStore(),
                  orders=MemoryOrderStore(), attempts=MemoryAttemptLog())


class MemoryStore(Stores):
    """The memory ports as one bundle (``stores()``), under the name of the one class that
    used to serve them all; ``MemoryStore().effects`` is its ``EffectStore``."""

    def __init__(self) -> None:
        super().__init__(effects=MemoryEffectStore(), failed=MemoryFailedTaskStore(),
                         analytics=MemoryAnalyticsStore(), orders=MemoryOrderStore(), attempts=MemoryAttemptLog())
