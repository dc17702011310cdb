"""Cancel an order from the console: the library's cancellation (``producer.library``).

Each kind gets a ``cancelled`` idempotency record (atomically with the handler's claim), the
order is marked cancelled, and the tasks Cloud Tasks holds are deleted. A kind whose effect
already happened or is running is reported as such.

The console is an operator's tool (its allowed hosts, CSRF), so it needs no cancel token and
cancels whatever the order's fulfilment state; it never refunds. An operator refunds with
``Checkout.cancel(order_id, force=True)`` (``producer.orders``) or in the processor's
dashboard; a payment that succeeds after the cancel is refunded by the Stripe webhook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ordertasks.handlers.config import Catalog
from ordertasks.handlers.ports import Clock, EffectStore, OrderStore
from ordertasks.producer.library import cancel_order

RESULT_TEXT = {"cancelled": "cancelled", "done": "effect already done", "in_flight": "running now: may still happen"}


@dataclass(frozen=True)
class Cancelled:
    """What happened to one kind of the order."""

    kind: str
    task_name: str
    result: str          # "cancelled" | "effect already done" | "running now: may still happen"


def cancel_pending_tasks(tasks: Any, orders: OrderStore, effects: EffectStore, catalog: Catalog, clock: Clock,
                         order_id: str) -> list[Cancelled]:
    """Cancel every kind of the order; one line per kind."""
    return [Cancelled(r.kind, r.name, RESULT_TEXT[r.state])
            for r in cancel_order(orders, effects, tasks, catalog, clock, order_id)]


def cancel_summary(results: list[Cancelled]) -> list[tuple[str, str]]:
    """Flash lines for a cancel: one per outcome, naming the kinds (errors in full)."""
    by_result: dict[str, list[str]] = {}
    for r in results:
        by_result.setdefault(r.result, []).append(r.kind)
    lines = [(f"{', '.join(kinds)}: {result}", "error" if result.startswith("error") else "ok")
             for result, kinds in by_result.items()]
    return lines or [("the order has no tasks", "ok")]
