"""The auditor: every effect a paid order owes ends ``done``, ``cancelled`` or ``failed``.

Cloud Tasks deletes a task after its retries whatever the handler answered, or did not: a
handler that is down, crash-looping or failing fast for longer than a queue's retry span
never sees a final attempt, so none of our code runs for it and no failed-task record is
written. The ledger knows what is owed: each outbox entry carries ``audit_at``, its schedule
time plus the queue's whole retry span (every backoff and dispatch deadline, from the
catalog) plus a margin of at most a minute. The auditor compares the ledger with what Cloud
Tasks still holds. For each entry due (``OrderStore.due_audits``, earliest first, at most
``limit`` a run):

1. **Terminal?** The effect is ``done`` (idempotency store or far end) or ``cancelled``, the
   order was cancelled, or the failed-task log holds it (open, replay requested, or closed by
   a person) → the entry is settled with that state and never looked at again. A delivery
   holding a live lease is not terminal yet: look again one retry span later.
2. **Still in Cloud Tasks?** ``GetTask`` on its current name (``…-a<N>`` after a
   re-creation) and on a triage replay's name. Found → look again one retry span later.
3. **Gone, and owed.** While the entry has re-creations left (``[auditor] recreations``,
   default 3) the task is created again as ``…-a<N>``, due now; after that a failed-task
   record ``TaskVanished`` is written and the entry settled ``failed``.

The stores are read first (most effects are done by then: no Cloud Tasks call), and read
again after ``GetTask`` answered NOT_FOUND: Cloud Tasks deletes a task only after its last
attempt ended, and the handler writes its records before it answers, so an effect that is
not terminal on the read after its task is gone was never going to be.

Safe beside deliveries and beside itself: every change to an entry is a compare-and-set on
its ``audit_at`` (``OrderStore.update_audit``), so of two auditors that read one entry only
one acts; a re-created task's name is deterministic, so a second create answers
ALREADY_EXISTS; the failed record is written only by the auditor that moved ``audit_at``
first. Each action is logged as one structured line with ``audit_action`` (``recreated`` or
``failed``): ``ordertasks deploy`` turns those into a metric and an alert.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc

from ordertasks.handlers.config import Catalog
from ordertasks.handlers.contract import effect_key, encode
from ordertasks.handlers.errors import OrderTasksError, TaskVanished
from ordertasks.handlers.logs import log_line
from ordertasks.handlers.ports import (AuditChange, Clock, EffectRecord, EffectState, EffectStore, FailedStatus,
                                       FailedTask, FailedTaskStore, FailureReport, OrderRecord, OrderStatus, OrderStore,
                                       OutboxEntry, OutboxState, Settled)
from ordertasks.producer.enqueue import ENQUEUE_ERRORS, Enqueuer, sibling_name

PAGE = 500                  # due entries read per query
WORKERS = 8                 # orders audited at once (each is a few store reads and maybe a GetTask)
# A failed record in one of these accounts for the effect; ``replayed`` does not (a replay is in flight).
ACCOUNTED_FOR = frozenset({FailedStatus.OPEN, FailedStatus.REPLAY_REQUESTED, FailedStatus.RESOLVED})
CLAIM_SECONDS = 300.0       # how long an auditor that claimed an entry has to write its failed record


@dataclass
class AuditSummary:
    """What one run of the auditor found and did (counts of owed effects)."""

    looked: int = 0         # entries past their retry span
    settled: int = 0        # found done, cancelled or in the failed-task log
    live: int = 0           # a task of theirs is still in Cloud Tasks (or a delivery holds the claim)
    recreated: int = 0      # created again as …-a<N>
    vanished: int = 0       # recorded as failed: TaskVanished
    errors: int = 0         # could not be checked now (Cloud Tasks or a store unreachable): next run
    states: dict[str, int] = field(default_factory=dict)   # settled: done / cancelled / failed → count

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)

    def add(self, other: "AuditSummary") -> None:
        """Count ``other``'s figures in this summary too."""
        for name in ("looked", "settled", "live", "recreated", "vanished", "errors"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for state, n in other.states.items():
            self.states[state] = self.states.get(state, 0) + n

    def line(self) -> str:
        """The one-line summary the CLI prints."""
        settled = ", ".join(f"{n} {state}" for state, n in sorted(self.states.items())) or "none"
        return (f"audit: {self.looked} owed effect(s) past their retry span: {self.settled} settled ({settled}), "
                f"{self.live} still in Cloud Tasks, {self.recreated} re-created, {self.vanished} recorded as "
                f"failed (TaskVanished), {self.errors} not checked (try again)")


def _by_order(entries: list[OutboxEntry]) -> dict[str, list[OutboxEntry]]:
    grouped: dict[str, list[OutboxEntry]] = {}
    for entry in entries:
        grouped.setdefault(entry.order_id, []).append(entry)
    return grouped


class Auditor:
    """Finds owed effects that Cloud Tasks dropped (see the module docstring)."""

    def __init__(self, orders: OrderStore, effects: EffectStore, failed: FailedTaskStore, enqueuer: Enqueuer,
                 clock: Clock, progress: Callable[[str], None] | None = None, structured_log: bool = True,
                 page: int = PAGE, workers: int = WORKERS) -> None:
        # progress: each action as a sentence (the CLI prints them); structured_log: one JSON line
        # per action on stdout (Cloud Logging reads them; deploy's metric counts them).
        self.orders = orders
        self.effects = effects
        self.failed = failed
        self.enqueuer = enqueuer
        self.catalog: Catalog = enqueuer.catalog
        self.clock = clock
        self.progress = progress
        self.structured_log = structured_log
        self.page = page
        self.workers = workers

    def run(self, limit: int = 500, seconds: float | None = None) -> AuditSummary:
        """Audit up to ``limit`` due entries, a page at a time and ``WORKERS`` orders at once,
        stopping after ``seconds`` (the maintenance job's time budget) if given."""
        summary, seen = AuditSummary(), set[tuple[str, str]]()
        deadline = None if seconds is None else time.monotonic() + seconds
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="audit") as pool:
            while summary.looked < limit and (deadline is None or time.monotonic() < deadline):
                # Entries that stay due (an error, a lost race) come first again: ask for more.
                page = self.orders.due_audits(self.clock.now(), min(self.page, limit - summary.looked) + len(seen))
                fresh = [e for e in page if (e.order_id, e.kind) not in seen][:limit - summary.looked]
                if not fresh:
                    break
                seen.update((e.order_id, e.kind) for e in fresh)
                for part in pool.map(self._audit_one_order, _by_order(fresh).items()):
                    summary.add(part)
        return summary

    def _audit_one_order(self, group: tuple[str, list[OutboxEntry]]) -> AuditSummary:
        order_id, entries = group
        summary = AuditSummary(looked=len(entries))
        try:
            self._audit_order(order_id, entries, summary)
        except (OrderTasksError, *ENQUEUE_ERRORS) as exc:
            summary.errors += 1
            self._say(f"could not audit order {order_id}: {type(exc).__name__}: {exc}")
        return summary

    # --- one order ------------------------------------------------------------------------

    def _audit_order(self, order_id: str, entries: list[OutboxEntry], summary: AuditSummary) -> None:
        """Settle what is terminal in one write (Firestore bills per document), then look
        after the rest one by one."""
        order = self.orders.get_order(order_id)
        settled: dict[str, str] = {}
        open_: list[OutboxEntry] = []
        for entry in entries:
            state = None if entry.kind not in self.catalog.kinds else self._terminal_now(entry, order)
            if state is not None:
                settled[entry.kind] = state
            elif entry.kind not in self.catalog.kinds or entry.state == OutboxState.PENDING:
                # A kind this catalog no longer has, or not yet in Cloud Tasks (reconcile's job).
                self._later(entry, summary)
            else:
                open_.append(entry)
        self._settle(order_id, [e for e in entries if e.kind in settled], settled, summary)
        for entry in open_:
            self._audit_open(entry, order, summary)

    def _audit_open(self, entry: OutboxEntry, order: OrderRecord | None, summary: AuditSummary) -> None:
        failed = self.failed.get_failed(effect_key(entry.order_id, entry.kind))
        if self._leased(self.effects.get_effect(entry.order_id, entry.kind)) or self._task_alive(entry, failed):
            self._later(entry, summary)
            return
        # Gone from Cloud Tasks. Read again: a delivery may have finished since the first read.
        state = self._terminal_now(entry, order)
        if state is not None:
            self._settle(entry.order_id, [entry], {entry.kind: state}, summary)
        elif entry.audits < self.catalog.auditor.recreations:
            self._recreate(entry, summary)
        else:
            self._record_vanished(entry, summary)

    def _terminal_now(self, entry: OutboxEntry, order: OrderRecord | None) -> str | None:
        """The effect's terminal state from the stores, or ``None`` (a live lease is not one)."""
        effect = self.effects.get_effect(entry.order_id, entry.kind)
        if effect is not None and effect.state in (EffectState.DONE, EffectState.CANCELLED):
            return Settled.DONE if effect.state == EffectState.DONE else Settled.CANCELLED
        if self._leased(effect):
            return None
        if order is None or order.status == OrderStatus.CANCELLED:
            return Settled.CANCELLED
        failed = self.failed.get_failed(effect_key(entry.order_id, entry.kind))
        return Settled.FAILED if failed is not None and failed.status in ACCOUNTED_FOR else None

    def _settle(self, order_id: str, entries: list[OutboxEntry], states: dict[str, str], summary: AuditSummary) -> None:
        changes = [AuditChange(e.kind, e.audit_at, None, settled=states[e.kind]) for e in entries if e.audit_at]
        if not changes:
            return
        for kind in self.orders.update_audits(order_id, changes):
            summary.settled += 1
            summary.states[states[kind]] = summary.states.get(states[kind], 0) + 1

    def _task_alive(self, entry: OutboxEntry, failed: FailedTask | None) -> bool:
        names = [self._current_name(entry)]
        if failed is not None and failed.status == FailedStatus.REPLAYED and failed.replays:
            names.append(sibling_name(entry.task_name, entry.order_id, entry.kind, replay=failed.replays))
        return any(self._exists(name) for name in names)

    def _exists(self, name: str) -> bool:
        try:
            self.enqueuer.client.get_task(name=name, timeout=self.enqueuer.settings.tasks.enqueue_timeout_seconds)
        except gexc.NotFound:
            return False
        return True

    @staticmethod
    def _current_name(entry: OutboxEntry) -> str:
        if not entry.audits:
            return entry.task_name
        return sibling_name(entry.task_name, entry.order_id, entry.kind, audit=entry.audits)

    def _leased(self, effect: EffectRecord | None) -> bool:
        return (effect is not None and effect.state == EffectState.IN_PROGRESS
                and effect.lease_expires_at is not None and effect.lease_expires_at > self.clock.now())

    # --- actions -------------------------------------------------------------------------

    def _later(self, entry: OutboxEntry, summary: AuditSummary) -> None:
        assert entry.audit_at is not None
        summary.live += 1
        self.orders.update_audit(entry.order_id, entry.kind, entry.audit_at, audit_at=self._next_look(entry.kind))

    def _next_look(self, kind: str) -> datetime:
        span = self.catalog.audit_after_seconds(kind) if kind in self.catalog.kinds else 3600.0
        return self.clock.now() + timedelta(seconds=span)

    def _recreate(self, entry: OutboxEntry, summary: AuditSummary) -> None:
        assert entry.audit_at is not None
        number, claimed_until = entry.audits + 1, self._next_look(entry.kind)
        if not self.orders.update_audit(entry.order_id, entry.kind, entry.audit_at, audit_at=claimed_until,
                                        audits=number):
            return                                  # another auditor took this entry
        result = self.enqueuer.recreate(entry.task_name, entry.order_id, entry.kind, number)
        if not result.scheduled:
            # Nothing was created: give the re-creation back so the next run tries it again.
            self.orders.update_audit(entry.order_id, entry.kind, claimed_until, audit_at=entry.audit_at,
                                     audits=entry.audits)
            summary.errors += 1
            self._say(f"could not re-create {result.task_name}: {result.error}")
            return
        summary.recreated += 1
        self._log("recreated", entry, result.task_name,
                  f"auditor: Cloud Tasks dropped {self._current_name(entry)} before the handler answered; "
                  f"created it again as {result.task_name} ({number} of {self.catalog.auditor.recreations})")

    def _record_vanished(self, entry: OutboxEntry, summary: AuditSummary) -> None:
        assert entry.audit_at is not None
        claimed_until = self.clock.now() + timedelta(seconds=CLAIM_SECONDS)
        if not self.orders.update_audit(entry.order_id, entry.kind, entry.audit_at, audit_at=claimed_until):
            return                                  # another auditor took this entry
        name = self._current_name(entry)
        self.failed.record_failure(self._report(entry, name))
        self.orders.update_audit(entry.order_id, entry.kind, claimed_until, audit_at=None, settled=Settled.FAILED)
        summary.vanished += 1
        self._log("failed", entry, name, f"auditor: Cloud Tasks dropped {name} before the handler answered, "
                                         f"after {entry.audits} re-creation(s); recorded as failed (TaskVanished)")

    def _report(self, entry: OutboxEntry, name: str) -> FailureReport:
        queue = self.catalog.queue_for(entry.kind)
        span = queue.retry_span_seconds(self.catalog.kinds[entry.kind].dispatch_deadline_seconds)
        error = (f"Cloud Tasks gave up on task {name} before the handler answered: it deletes a task after its "
                 f"retries (queue {queue.name}: up to {span:.0f} s) whatever the handler did, and the auditor's "
                 f"{entry.audits} re-creation(s) went the same way. The handler was down, crash-looping or failing "
                 f"for that long: fix it, then `ordertasks failed replay {effect_key(entry.order_id, entry.kind)}`")
        return FailureReport(order_id=entry.order_id, kind=entry.kind, queue=queue.name, task_name=name,
                             payload=json.loads(encode(entry.kind, entry.order_id)), error_type=TaskVanished.__name__,
                             error=error, attempt=entry.audits + 1, failed_at=self.clock.now())

    def _log(self, action: str, entry: OutboxEntry, name: str, message: str) -> None:
        if self.structured_log:
            log_line("WARNING", message, {}, audit_action=action, kind=entry.kind, order_id=entry.order_id,
                     queue=self.catalog.kinds[entry.kind].queue, task_name=name)
        self._say(message)

    def _say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)
