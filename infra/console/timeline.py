"""An order's timeline: placed → each task's schedule, its attempts and the effect's outcome.

For each outbox entry (one per kind) the page joins what each system knows:
the outbox (name, schedule), Cloud Tasks (``GetTask``: dispatches, first and last attempt,
status of the last response; gone once the task finished or was deleted), the failed-task
log (every failed attempt with its error) and the idempotency record (done, in progress,
duplicates absorbed). Replays (``…-r<N>``) are looked up by their deterministic names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as gexc

from ordertasks.handlers.contract import effect_key
from ordertasks.handlers.ports import LIVE_FAILED, EffectRecord, EffectState, FailedTask, OrderRecord, OutboxEntry, OutboxState


@dataclass(frozen=True)
class CloudTask:
    """What Cloud Tasks says about one task name (``None`` fields when it no longer exists)."""

    name: str
    exists: bool
    schedule_time: datetime | None = None
    dispatch_count: int = 0
    response_count: int = 0
    first_attempt: datetime | None = None
    last_attempt: datetime | None = None
    last_status: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Step:
    """One kind of the order, everything known about it."""

    entry: OutboxEntry
    queue: str
    outcome: str
    explanation: str
    task: CloudTask
    effect: EffectRecord | None
    failed: FailedTask | None
    replays: list[CloudTask] = field(default_factory=list)

    @property
    def cancellable(self) -> bool:
        """A task Cloud Tasks still holds whose effect has not happened."""
        return self.task.exists and not (self.effect and self.effect.state == EffectState.DONE)


@dataclass(frozen=True)
class Timeline:
    """The order and its steps."""

    order: OrderRecord
    steps: list[Step]

    @property
    def cancellable(self) -> list[Step]:
        """Steps whose task can still be cancelled."""
        return [s for s in self.steps if s.cancellable]


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    moment = value if isinstance(value, datetime) else value.ToDatetime()
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None if moment.timestamp() <= 0 else moment


def cloud_task(tasks: Any, name: str) -> CloudTask:
    """``GetTask`` as a ``CloudTask``; a missing task is ``exists=False``, an error is kept."""
    try:
        task = tasks.get_task(name=name, timeout=10)
    except gexc.NotFound:
        return CloudTask(name, exists=False)
    except gexc.GoogleAPICallError as exc:
        return CloudTask(name, exists=False, error=f"{type(exc).__name__}: {exc.message}")
    last = task.last_attempt
    status = last.response_status if last and last.response_status else None
    return CloudTask(name, True, _when(task.schedule_time), task.dispatch_count, task.response_count,
                     _when(task.first_attempt.dispatch_time) if task.first_attempt else None,
                     _when(last.dispatch_time) if last else None,
                     f"{status.code} {status.message}".strip() if status and (status.code or status.message) else None)


def outcome(task: CloudTask, effect: EffectRecord | None, failed: FailedTask | None,
            now: datetime) -> tuple[str, str]:
    """(outcome, explanation) of one step; the effect's record wins over the queue's view."""
    if effect is not None and effect.state == EffectState.DONE:
        done_at = f"at {effect.updated_at:%H:%M:%S} UTC"
        return ("duplicate" if effect.duplicates else "done",
                f"{done_at}; {effect.duplicates} duplicate deliveries absorbed" if effect.duplicates else done_at)
    if effect is not None and effect.state == EffectState.CANCELLED:
        return "cancelled", f"cancelled at {effect.updated_at:%H:%M:%S} UTC: a delivery now does nothing"
    if failed is not None and failed.status in LIVE_FAILED:
        return "failed", f"failed for good after {failed.attempts} attempts: {failed.error_type}"
    if failed is not None:
        return failed.status, f"failed, then {failed.status}" + (f" by {failed.resolved_by}" if failed.resolved_by else "")
    if task.exists:
        if task.schedule_time and task.schedule_time > now:
            return "scheduled", "waiting for its schedule time"
        return ("retrying", f"{task.dispatch_count} dispatches so far") if task.dispatch_count else ("due", "due now")
    if effect is not None:
        return "running", f"attempt {effect.attempts} in progress"
    return "cancelled", "no longer in Cloud Tasks and no effect recorded: cancelled (deleted)"


def step(console: Any, order_id: str, entry: OutboxEntry, now: datetime) -> Step:
    """Everything known about one kind of the order."""
    effect = console.effects.get_effect(order_id, entry.kind)
    failed = console.failed.get_failed(effect_key(order_id, entry.kind))
    if entry.state == OutboxState.PENDING:
        task = CloudTask(entry.task_name, exists=False)
        result = ("pending", "not yet accepted by Cloud Tasks; `ordertasks reconcile` enqueues it")
        if effect is None and failed is None:
            return Step(entry, _queue_of(entry.task_name), *result, task, effect, failed)
    task = cloud_task(console.tasks, entry.task_name)
    replays = [cloud_task(console.tasks, f"{_replay_parent(failed, entry)}/tasks/"
                                         f"{entry.task_name.rsplit('/', 1)[1]}-r{n}")
               for n in range(1, (failed.replays if failed else 0) + 1)]
    return Step(entry, _queue_of(entry.task_name), *outcome(task, effect, failed, now), task, effect, failed, replays)


def _queue_of(task_name: str) -> str:
    parts = task_name.split("/")
    return parts[5] if len(parts) > 5 else "?"


def _replay_parent(failed: FailedTask | None, entry: OutboxEntry) -> str:
    name = failed.task_name if failed and "/tasks/" in failed.task_name else entry.task_name
    return name.split("/tasks/", 1)[0]


def timeline(console: Any, order_id: str) -> Timeline | None:
    """The order's timeline, or ``None`` for an unknown order."""
    order = console.orders.get_order(order_id)
    if order is None:
        return None
    now = console.clock.now()
    return Timeline(order, [step(console, order_id, e, now) for e in console.orders.outbox_for(order_id)])
