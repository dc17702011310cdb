"""Reconcile: enqueue outbox entries still pending after a grace period.

A checkout that could not reach Cloud Tasks (202) leaves pending entries; so does a crash
between ``mark_paid`` and the enqueue. ``reconcile`` enqueues them under their deterministic
names and schedule times, so running it twice, or while a checkout is still enqueueing
(hence the grace period), creates nothing twice: Cloud Tasks answers ALREADY_EXISTS.

Run by ``ordertasks reconcile`` or ``POST /internal/reconcile`` (a Cloud Scheduler job).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from ordertasks.handlers.contract import OrderSnapshot
from ordertasks.handlers.ports import OrderStatus, OrderStore, OutboxEntry
from ordertasks.producer.backend_flags import add_backend_flags, settings_with_flags
from ordertasks.handlers.config import Settings
from ordertasks.producer.enqueue import Enqueuer


@dataclass(frozen=True)
class ReconcileSummary:
    """How many orders and entries were looked at, scheduled now, and still failing."""

    orders: int
    pending: int
    scheduled: int
    failed: int

    def as_dict(self) -> dict[str, int]:
        """JSON-ready."""
        return asdict(self)

    def line(self) -> str:
        """The one-line summary the CLI prints."""
        return (f"reconcile: {self.pending} pending task(s) in {self.orders} order(s): "
                f"{self.scheduled} scheduled, {self.failed} still pending")


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
    parser.add_argument("--limit", type=int, default=500, help="at most this many entries per run (default 500)")
    add_backend_flags(parser)
    args = parser.parse_args(list(argv or []))
    from ordertasks.producer import wiring  # the CLI alone pays for building clients
    from ordertasks.producer.replay_target import ReplayTargetUnknown, handler_target

    from_shell = settings is None
    settings = settings or settings_with_flags(Settings.from_env(), args)
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
        summary = reconcile(wiring.order_store(settings), enqueuer, wiring.clock().now(),
                            args.grace_seconds, args.limit)
    finally:
        enqueuer.close()
    print(summary.line())
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
