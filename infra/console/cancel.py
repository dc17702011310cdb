"""Cancel an order's pending tasks: delete them from Cloud Tasks by their deterministic names.

The one place the console cancels, so it can later call the library's
``OrderTasks.cancel(order_id)`` instead. A task whose effect already happened is left
alone (nothing to cancel); a task Cloud Tasks no longer holds counts as already gone.
Entries still ``pending`` in the outbox (never accepted by Cloud Tasks) are reported as
such: deleting cannot stop ``reconcile`` from enqueueing them later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc

from handlers.ports import EffectStore, OrderStore, OutboxEntry


@dataclass(frozen=True)
class Cancelled:
    """What happened to one kind of the order."""

    kind: str
    task_name: str
    result: str          # "deleted" | "already gone" | "effect already done" | "pending in outbox" | "error: …"


def _cancel_one(tasks: Any, effects: EffectStore, order_id: str, entry: OutboxEntry) -> Cancelled:
    effect = effects.get_effect(order_id, entry.kind)
    if effect is not None and effect.state == "done":
        return Cancelled(entry.kind, entry.task_name, "effect already done")
    if entry.state == "pending":
        return Cancelled(entry.kind, entry.task_name, "pending in outbox")
    try:
        tasks.delete_task(name=entry.task_name, timeout=10)
    except gexc.NotFound:
        return Cancelled(entry.kind, entry.task_name, "already gone")
    except gexc.GoogleAPICallError as exc:
        return Cancelled(entry.kind, entry.task_name, f"error: {type(exc).__name__}: {exc.message}")
    return Cancelled(entry.kind, entry.task_name, "deleted")


def cancel_pending_tasks(tasks: Any, orders: OrderStore, effects: EffectStore, order_id: str) -> list[Cancelled]:
    """Delete every task of the order that Cloud Tasks holds and whose effect has not happened."""
    return [_cancel_one(tasks, effects, order_id, entry) for entry in orders.outbox_for(order_id)]


def cancel_summary(results: list[Cancelled]) -> list[tuple[str, str]]:
    """Flash lines for a cancel: one per outcome, naming the kinds (errors in full)."""
    by_result: dict[str, list[str]] = {}
    for r in results:
        by_result.setdefault(r.result, []).append(r.kind)
    lines = [(f"{', '.join(kinds)}: {result}", "error" if result.startswith("error") else "ok")
             for result, kinds in by_result.items()]
    return lines or [("the order has no tasks", "ok")]
