"""An effect's state in the one vocabulary every view uses (``handlers.ports.TaskState``).

``OrderTasks.status`` and ``GET /api/orders/{id}`` (through ``OrderRecords.task_view``), the
console's badges and timeline, and ``ordertasks stats`` all name an effect's state with
``effect_state`` below (the counts with ``state_counts``), so the same effect never reads
``scheduled`` in one place and ``retrying`` in another. docs/library.md ("Effect states")
documents the words once.

Which source wins, first match:

1. the idempotency record says ``done`` or ``cancelled``: it happened, or it never will;
2. the order was cancelled: ``cancelled``;
3. the failed-task log holds a live entry (``open``, ``replay_requested``): ``failed``;
4. the record says ``retrying`` (an attempt failed, the next is due at ``next_attempt_at``),
   ``in_progress`` with a lease (``running``) or ``failed`` (unless a replay of it waits);
5. an entry a person resolved without the effect happening: ``failed``;
6. else the outbox: ``pending`` (not in Cloud Tasks yet) or ``scheduled``.

``failed`` and ``cancelled`` are settled (``SETTLED_STATES``): never counted as in progress.
"""

from __future__ import annotations

from typing import Any

from ordertasks.handlers.ports import (LIVE_FAILED, EffectRecord, EffectState, EffectStore, FailedStatus, FailedTask,
                                       OrderStatus, TaskState)

# Effect states the idempotency store holds, as the vocabulary names them (aggregation counts).
STORED_AS: dict[str, str] = {EffectState.DONE: TaskState.DONE, EffectState.IN_PROGRESS: TaskState.RUNNING,
                             EffectState.RETRYING: TaskState.RETRYING, EffectState.FAILED: TaskState.FAILED,
                             EffectState.CANCELLED: TaskState.CANCELLED}


def effect_state(outbox_state: str, effect: EffectRecord | None, failed: FailedTask | None,
                 order_status: str = OrderStatus.PAID) -> TaskState:
    """The effect's state from what each store knows (see the module docstring for the order)."""
    if effect is not None and effect.state in (EffectState.DONE, EffectState.CANCELLED):
        return TaskState(effect.state)
    if order_status == OrderStatus.CANCELLED:
        return TaskState.CANCELLED
    if failed is not None and failed.status in LIVE_FAILED:
        return TaskState.FAILED
    recorded = _recorded(effect, failed)
    if recorded is not None:
        return recorded
    if failed is not None and failed.status == FailedStatus.RESOLVED:
        return TaskState.FAILED          # closed by a person: it will not happen
    return TaskState(outbox_state)


def _recorded(effect: EffectRecord | None, failed: FailedTask | None) -> TaskState | None:
    if effect is None:
        return None
    if effect.state == EffectState.RETRYING:
        return TaskState.RETRYING
    if effect.state == EffectState.IN_PROGRESS and effect.lease_expires_at is not None:
        return TaskState.RUNNING
    if effect.state == EffectState.FAILED and (failed is None or failed.status != FailedStatus.REPLAYED):
        return TaskState.FAILED
    return None


def retry_view(state: str, effect: EffectRecord | None, failed: FailedTask | None) -> dict[str, Any]:
    """``attempt``, ``max_attempts``, ``last_error`` and ``next_attempt_at`` (ISO 8601) of a
    ``retrying`` or ``failed`` effect; each ``None`` otherwise, or when nothing recorded it."""
    view: dict[str, Any] = {"attempt": None, "max_attempts": None, "last_error": None, "next_attempt_at": None}
    if state not in (TaskState.RETRYING, TaskState.FAILED):
        return view
    if effect is not None and effect.attempt:
        view |= {"attempt": effect.attempt, "max_attempts": effect.max_attempts, "last_error": effect.last_error}
        if state == TaskState.RETRYING and effect.next_attempt_at is not None:
            view["next_attempt_at"] = effect.next_attempt_at.isoformat()
    elif failed is not None:
        view |= {"attempt": failed.attempts, "last_error": failed.error}
    return view


def attempt_text(view: dict[str, Any]) -> str:
    """``attempt 2 of 5`` (``attempt 2`` without a fixed limit); empty when no attempt failed."""
    if not view.get("attempt"):
        return ""
    limit = view.get("max_attempts")
    return f"attempt {view['attempt']} of {limit}" if limit else f"attempt {view['attempt']}"


def state_counts(effects: EffectStore, kind: str) -> dict[str, int]:
    """Effects of ``kind`` per state of the vocabulary, from aggregation queries on the
    idempotency store (``done`` also at the far end of create-once kinds)."""
    return {name: effects.count_effects(kind, state) for state, name in STORED_AS.items()}
