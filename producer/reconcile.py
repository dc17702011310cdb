"""Reconcile: enqueue outbox entries still pending after a grace period, then audit.

A checkout that could not reach Cloud Tasks (202) leaves pending entries; so does a crash
between ``mark_paid`` and the enqueue. ``reconcile`` enqueues them under their deterministic
names and schedule times, so running it twice, or while a checkout is still enqueueing
(hence the grace period), creates nothing twice: Cloud Tasks answers ALREADY_EXISTS.

Then the auditor (``producer.audit``) looks at owed effects past their queue's whole retry
span that are neither done, cancelled nor in the failed-task log, and whose task Cloud Tasks
no longer holds: it creates them again a bounded number of times, then records them as
failed (``TaskVanished``).

Run by ``ordertasks reconcile``, the maintenance entry point ``run_maintenance`` (a Cloud
Scheduler job) or ``POST /internal/reconcile`` on our checkout.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ordertasks.handlers.contract import OrderSnapshot
from ordertasks.handlers.ports import OrderStatus, OrderStore, OutboxEntry, Stores
from ordertasks.producer.backend_flags import add_backend_flags, reading_settings
from ordertasks.handlers.config import Settings
from ordertasks.producer.audit import AuditSummary, Auditor
from ordertasks.producer.enqueue import Enqueuer


@dataclass(frozen=True)
class ReconcileSummary:
    """How many orders and entries were looked at, scheduled now, and still failing; and what
    the auditor found (``None`` when it did not run)."""

    orders: int
    pending: int
    scheduled: int
    failed: int
    audit: AuditSummary | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``audit`` only when the auditor ran)."""
        found = asdict(self)
        if self.audit is None:
            found.pop("audit")
        return found

    def line(self) -> str:
        """The one-line summary of the pending entries (the audit's is ``audit.line()``)."""
        return (f"reconcile: {self.pending} pending task(s) in {self.orders} order(s): "
                f"{self.scheduled} scheduled, {self.failed} still pending")

    def with_audit(self, audit: AuditSummary) -> "ReconcileSummary":
        """This summary with the auditor's."""
        return replace(self, audit=audit)


def reconcile(store: OrderStore, enqueuer: Enqueuer, now: datetime, grace_seconds: float = 60.0,
              limit: int = 500) -> ReconcileSummary:
    """Enqueue pending outbox entries created before ``now - grace_seconds``; mark them scheduled."""
    entries = store.pending_outbox(now - timedelta(seconds=grace_seconds), limit)
    by_order: dict[str, list[OutboxEntry]] = defaultdict(list)
    for entry in entries:
        by_order[entry.order_id].append(entry)
    scheduled = sum(_reconcile_order(store, enqueuer, order_id, group, now) for order_id, group in by_order.items())
    return ReconcileSummary(orders=len(by_order), pending=len(entries), scheduled=scheduled,
                            failed=len(entries) - scheduled)


def _reconcile_order(store: OrderStore, enqueuer: Enqueuer, order_id: str, entries: list[OutboxEntry],
                     now: datetime) -> int:
    order = store.get_order(order_id)
    if order is None:
        return 0  # an outbox without its order cannot be built; left pending, counted as failed
    if order.status == OrderStatus.CANCELLED:
        for entry in entries:   # nothing is owed any more: take them off the pending list
            store.mark_scheduled(order_id, entry.kind, now)
        return len(entries)
    snapshot = OrderSnapshot.model_validate(order.snapshot)
    results = enqueuer.enqueue_order(order_id, snapshot, [e.kind for e in entries])
    for result in results:
        if result.scheduled:
            store.mark_scheduled(order_id, result.kind, now)
    return sum(1 for r in results if r.scheduled)


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """``ordertasks reconcile [--grace-seconds N] [--limit N]``; exit 1 if any entry stays pending."""
    parser = argparse.ArgumentParser(prog="ordertasks reconcile", description=__doc__.splitlines()[0])
    parser.add_argument("--grace-seconds", type=float, default=60.0,
                        help="leave entries younger than this to the checkout still enqueueing them (default 60)")
    parser.add_argument("--limit", type=int, default=500,
                        help="at most this many pending entries, and this many owed effects audited, per run (default 500)")
    parser.add_argument("--no-audit", action="store_true",
                        help="only enqueue pending entries; skip the audit of effects Cloud Tasks dropped")
    add_backend_flags(parser, init=True)
    args = parser.parse_args(list(argv or []))
    from ordertasks.handlers.wiring import build_stores
    from ordertasks.producer import wiring  # the CLI alone pays for building clients
    from ordertasks.producer.replay_target import ReplayTargetUnknown, handler_target

    from_shell = settings is None
    settings = settings or reading_settings(args, tasks_api=True)
    enqueuer = wiring.enqueuer(settings)
    try:
        # From an operator's shell the tasks go to the deployed handler, not to the shell's
        # settings; a caller that passes settings passes its own deployment's.
        enqueuer.target = handler_target(settings, enqueuer.catalog) if from_shell else None
    except ReplayTargetUnknown as exc:
        enqueuer.close()
        print(f"ordertasks reconcile: {exc}", file=sys.stderr)
        return 1
    try:
        stores = build_stores(settings)          # one set of store clients for both steps
        summary = reconcile(stores.orders, enqueuer, wiring.clock().now(), args.grace_seconds, args.limit)
        print(summary.line(), flush=True)
        if not args.no_audit:
            progress = lambda line: print(f"  {line}", flush=True)  # noqa: E731 - one line, used once
            audit = auditor_for(settings, stores, enqueuer, progress).run(args.limit)
            summary = summary.with_audit(audit)
            print(audit.line())
    finally:
        enqueuer.close()
    return 1 if summary.failed or (summary.audit is not None and summary.audit.errors) else 0


def auditor_for(settings: Settings, stores: Stores, enqueuer: Enqueuer, progress: Any = None) -> Auditor:
    """The auditor over ``stores`` (effects read through the far ends too)."""
    from ordertasks.handlers.wiring import recorded_effects
    from ordertasks.producer import wiring

    return Auditor(stores.orders, recorded_effects(settings, stores, enqueuer.catalog), stores.failed, enqueuer,
                   wiring.clock(), progress=progress, structured_log=progress is None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
