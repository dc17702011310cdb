"""An order's timeline: placed → each task's schedule, its attempts and the effect's outcome.

For each outbox entry (one per kind) the page joins what each system knows:
the outbox (name, schedule), Cloud Tasks (``GetTask``: dispatches, first and last attempt,
status of the last response; gone once the task finished or was deleted), the failed-task
log (every failed attempt with its error), the idempotency record (its state, the latest
failed attempt, duplicates absorbed) and the attempt log (every delivery the handler
answered, successful ones included: when, how long, the outcome and the answer; one query
for the whole order). Each step's badge is the effect's state in the one
vocabulary (``producer.effect_states``: what the API and ``ordertasks stats`` say); the
explanation beside it is the detail (attempt N of M, the readable error, the next attempt's
time). Replays (``…-r<N>``) are looked up by their deterministic names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as gexc

from ordertasks.handlers.contract import effect_key
from ordertasks.handlers.ports import (AttemptRecord, EffectRecord, EffectState, FailedStatus, FailedTask, OrderRecord,
                                      OrderStatus, OutboxEntry, OutboxState, TaskState)
from ordertasks.producer.effect_states import attempt_text, effect_state, retry_view


# An attempt's outcome as the timeline says it (the stored value is the AttemptOutcome).
ATTEMPT_WORDS = {"done": "done", "retry": "failed, retried", "failed": "failed for good",
                 "duplicate": "duplicate (already done)", "cancelled": "cancelled: nothing done"}


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
    attempts: list[AttemptRecord] = field(default_factory=list)   # the attempt log's, oldest first

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
                     _when(last.dispatch_time) if last else None, last_answer(status))


def last_answer(status: Any) -> str | None:
    """A task's last response as a person reads it: the HTTP status and message, never the
    ``google.rpc.Code`` Cloud Tasks files it under (``14`` is how it spells a 503)."""
    if not status or not (status.code or status.message):
        return None
    message = RPC_PREFIX.sub("", str(status.message or "")).strip()
    if message.upper().startswith("HTTP"):
        return message
    http = RPC_TO_HTTP.get(int(status.code or 0))
    return f"HTTP {http} {message}".strip() if http else (message or None)


RPC_PREFIX = re.compile(r"^[A-Z_]+\(\d+\):\s*")     # "UNAVAILABLE(14): HTTP status code 503"
# google.rpc.Code → the HTTP status it stands for (google/rpc/code.proto's mapping).
RPC_TO_HTTP = {1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 11: 400, 12: 501,
               13: 500, 14: 503, 15: 500, 16: 401}


def outcome(entry: OutboxEntry, task: CloudTask, effect: EffectRecord | None, failed: FailedTask | None,
            now: datetime, order_status: str = OrderStatus.PAID) -> tuple[str, str]:
    """(state, explanation) of one step: the state in the one vocabulary
    (``producer.effect_states``, as the API and ``stats`` say it), the explanation the detail."""
    state = effect_state(entry.state, effect, failed, order_status)
    return state, EXPLAIN[state](task, effect, failed, now)


def _explain_done(task: CloudTask, effect: EffectRecord | None, failed: FailedTask | None, now: datetime) -> str:
    if effect is None:
        return "done"
    done_at = f"at {_clock(effect.updated_at)}"
    return f"{done_at}; {effect.duplicates} duplicate deliveries absorbed" if effect.duplicates else done_at


def _explain_cancelled(task: CloudTask, effect: EffectRecord | None, failed: FailedTask | None, now: datetime) -> str:
    if effect is not None and effect.state == EffectState.CANCELLED:
        return f"cancelled at {_clock(effect.updated_at)}: a delivery now does nothing"
    return "the order was cancelled: a delivery now does nothing"


def _explain_failed(task: CloudTask, effect: EffectRecord | None, failed: FailedTask | None, now: datetime) -> str:
    view = retry_view(TaskState.FAILED, effect, failed)
    said = f"failed for good after {attempt_text(view)}" if view["attempt"] else "failed for good"
    if failed is not None and failed.status == FailedStatus.RESOLVED:
        said += f"; resolved by {failed.resolved_by or 'a person'}" + (f": {failed.note}" if failed.note else "")
    return f"{said}: {view['last_error']}" if view["last_error"] else said


def _explain_retrying(task: CloudTask, effect: EffectRecord | None, failed: FailedTask | None, now: datetime) -> str:
    view = retry_view(TaskState.RETRYING, effect, failed)
    said = f"{attempt_text(view)} failed: {view['last_error']}"
    if effect is not None and effect.next_attempt_at is not None:
        said += f"; next attempt {_clock(effect.next_attempt_at)} ({_relative(effect.next_attempt_at, now)})"
    return said


def _explain_running(task: CloudTask, effect: EffectRecord | None, failed: FailedTask | None, now: datetime) -> str:
    return f"attempt {effect.attempts if effect else 1} in progress"


def _explain_scheduled(task: CloudTask, effect: EffectRecord | None, failed: FailedTask | None, now: datetime) -> str:
    if failed is not None and failed.status == FailedStatus.REPLAYED:
        return "failed, then replayed: the replay waits in Cloud Tasks"
    if not task.exists:
        return "not in Cloud Tasks (dispatched, deleted or purged) and no effect recorded yet"
    if task.schedule_time and task.schedule_time > now:
        return f"waiting for its schedule time ({_relative(task.schedule_time, now)})"
    return "due now"


def _explain_pending(task: CloudTask, effect: EffectRecord | None, failed: FailedTask | None, now: datetime) -> str:
    return "not yet accepted by Cloud Tasks; `ordertasks reconcile` enqueues it"


EXPLAIN = {TaskState.DONE: _explain_done, TaskState.CANCELLED: _explain_cancelled, TaskState.FAILED: _explain_failed,
           TaskState.RETRYING: _explain_retrying, TaskState.RUNNING: _explain_running,
           TaskState.SCHEDULED: _explain_scheduled, TaskState.PENDING: _explain_pending}


def _clock(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%H:%M:%S} UTC"


def _relative(moment: datetime, now: datetime) -> str:
    seconds = round((moment - now).total_seconds())
    if seconds <= 0:
        return "due now"
    return f"in {seconds} s" if seconds < 120 else f"in {round(seconds / 60)} min"


def step(console: Any, order_id: str, entry: OutboxEntry, now: datetime, order_status: str = OrderStatus.PAID,
         attempts: list[AttemptRecord] | None = None) -> Step:
    """Everything known about one kind of the order (``attempts``: the kind's, from the attempt log)."""
    attempts = attempts or []
    effect = console.effects.get_effect(order_id, entry.kind)
    failed = console.failed.get_failed(effect_key(order_id, entry.kind))
    if entry.state == OutboxState.PENDING and effect is None and failed is None:
        task = CloudTask(entry.task_name, exists=False)
        return Step(entry, _queue_of(entry.task_name), *outcome(entry, task, effect, failed, now, order_status),
                    task, effect, failed, attempts=attempts)
    task = cloud_task(console.tasks, entry.task_name)
    replays = [cloud_task(console.tasks, f"{_replay_parent(failed, entry)}/tasks/"
                                         f"{entry.task_name.rsplit('/', 1)[1]}-r{n}")
               for n in range(1, (failed.replays if failed else 0) + 1)]
    return Step(entry, _queue_of(entry.task_name), *outcome(entry, task, effect, failed, now, order_status), task,
                effect, failed, replays, attempts)


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
    attempts = _attempts_by_kind(console, order_id)
    return Timeline(order, [step(console, order_id, e, now, order.status, attempts.get(e.kind))
                            for e in console.orders.outbox_for(order_id)])


def _attempts_by_kind(console: Any, order_id: str) -> dict[str, list[AttemptRecord]]:
    """The order's attempts (one query), by kind, oldest first; none when the console has no log."""
    by_kind: dict[str, list[AttemptRecord]] = {}
    for attempt in console.attempts.attempts_for(order_id) if console.attempts is not None else []:
        by_kind.setdefault(attempt.kind, []).append(attempt)
    return by_kind
