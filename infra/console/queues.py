"""The Queues page: each catalog queue as Cloud Tasks reports it, plus what the stores saw.

State and rate/retry settings come from ``GetQueue`` (what is deployed, which may differ from
the catalog), due-now versus later from a bounded task listing (``producer.backlog``), and
"done / failed in the last hour" from aggregation queries on the stores (effects completed,
tasks that failed for good). Per-attempt dispatch counts live in Cloud Monitoring
(``cloudtasks.googleapis.com/queue/task_attempt_count``), not here.

A queue's own page lists its tasks a page at a time (``ListTasks`` with its page token, BASIC
view); a task's page reads it with ``GetTask`` in the FULL view, whose body is the reference
``{kind, v, order_id}`` (never the order's data). Run now is ``RunTask``, delete ``DeleteTask``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import tasks_v2

from ordertasks.handlers.ports import EffectState, FailedFilter
from ordertasks.infra.config import Catalog, QueueConfig
from ordertasks.infra.console.context import Console
from ordertasks.producer.backlog import Backlog, queue_backlog
from ordertasks.producer.enqueue import queue_path

HOUR = timedelta(hours=1)
ACTIONS = ("pause", "resume", "purge")


@dataclass(frozen=True)
class QueueView:
    """One row of the Queues page."""

    name: str
    path: str
    kinds: list[str]
    state: str
    settings: dict[str, str]
    backlog: Backlog | None
    done_last_hour: int
    failed_last_hour: int
    error: str | None = None


def _seconds(value: Any) -> str:
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g} s"
    return f"{getattr(value, 'seconds', 0) + getattr(value, 'nanos', 0) / 1e9:g} s"


def live_settings(queue: Any) -> dict[str, str]:
    """Rate and retry settings of a ``tasks_v2.Queue`` as a person reads them."""
    rate, retry = queue.rate_limits, queue.retry_config
    return {"rate": f"{rate.max_dispatches_per_second:g}/s, burst {rate.max_burst_size}",
            "concurrency": str(rate.max_concurrent_dispatches),
            "attempts": "unlimited" if retry.max_attempts == -1 else str(retry.max_attempts),
            "backoff": f"{_seconds(retry.min_backoff)} → {_seconds(retry.max_backoff)}, "
                       f"{retry.max_doublings} doublings"}


def catalog_settings(config: QueueConfig) -> dict[str, str]:
    """The catalog's settings for a queue, in the same shape (shown when Cloud Tasks is unreachable)."""
    return {"rate": f"{config.max_dispatches_per_second:g}/s, burst {config.max_burst_size}",
            "concurrency": str(config.max_concurrent_dispatches),
            "attempts": "unlimited" if config.max_attempts == -1 else str(config.max_attempts),
            "backoff": f"{config.min_backoff_seconds:g} s → {config.max_backoff_seconds:g} s, "
                       f"{config.max_doublings} doublings"}


def kinds_of(catalog: Catalog, queue: str) -> list[str]:
    """The kinds the catalog sends through ``queue``."""
    return [name for name, kind in catalog.kinds.items() if kind.queue == queue]


def last_hour(console: Console, kinds: list[str], now: datetime) -> tuple[int, int]:
    """(effects done, tasks failed for good) in the last hour for these kinds."""
    since = now - HOUR
    done = sum(console.effects.count_effects(k, EffectState.DONE, updated_since=since) for k in kinds)
    failed = sum(console.failed.count_failed(FailedFilter(kind=k, failed_since=since)) for k in kinds)
    return done, failed


def queue_view(console: Console, name: str, now: datetime) -> QueueView:
    """The row of one queue; a Cloud Tasks error is shown in the row, not raised."""
    cat = console.catalog
    path, kinds = queue_path(cat.project, cat.region, name), kinds_of(cat, name)
    done, failed = last_hour(console, kinds, now)
    try:
        queue = console.tasks.get_queue(name=path, timeout=10)
        backlog = queue_backlog(console.tasks, path, now)
    except Exception as exc:  # noqa: BLE001 - one unreachable queue must not hide the others
        return QueueView(name, path, kinds, "unknown", catalog_settings(cat.queues[name]), None, done, failed,
                         error=f"{type(exc).__name__}: {str(exc)[:300]}")
    return QueueView(name, path, kinds, queue.state.name, live_settings(queue), backlog, done, failed)


def queue_views(console: Console, now: datetime) -> list[QueueView]:
    """Every catalog queue, in catalog order."""
    return [queue_view(console, name, now) for name in console.catalog.queues]


def apply_action(console: Console, name: str, action: str) -> str:
    """Pause, resume or purge the queue; return what happened, for the flash message."""
    cat = console.catalog
    path = queue_path(cat.project, cat.region, name)
    method = {"pause": console.tasks.pause_queue, "resume": console.tasks.resume_queue,
              "purge": console.tasks.purge_queue}[action]
    queue = method(name=path, timeout=10)
    if action == "purge":
        return f"{name}: purged (tasks created before now are being deleted)"
    return f"{name}: {action}d, now {queue.state.name}"


# --- one queue's tasks ------------------------------------------------------------------

TASK_PAGE_SIZE = 50
TASK_ACTIONS = ("run", "delete")
TASK_STATES = ("due", "retrying", "scheduled")
REFERENCE_FIELDS = ("kind", "v", "order_id")


@dataclass(frozen=True)
class TaskView:
    """One task of a queue as a person reads it (``body`` only from a FULL view)."""

    id: str
    name: str
    state: str                       # one of TASK_STATES
    schedule: datetime | None
    created: datetime | None
    dispatches: int
    responses: int
    first_attempt: datetime | None
    last_attempt: datetime | None
    last_status: str                 # "503 Service Unavailable"-like, "" when no answer yet
    url: str
    body: dict[str, Any] | None = None
    body_problem: str | None = None  # why ``body`` is not a task reference


def _moment(value: Any) -> datetime | None:
    if not value:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def task_state(task: Any, now: datetime) -> str:
    """``retrying`` once an attempt failed (it waits out a backoff, or is due again), else
    ``due`` when its schedule has passed, else ``scheduled`` (never tried yet)."""
    attempt = task.last_attempt if "last_attempt" in task else None
    if task.dispatch_count or (attempt is not None and "dispatch_time" in attempt):
        return "retrying"
    when = _moment(task.schedule_time)
    return "due" if when is None or when <= now else "scheduled"


def _answer(attempt: Any) -> str:
    if attempt is None or "response_status" not in attempt:
        return ""
    status = attempt.response_status     # a google.rpc.Status: the message says the HTTP status
    return status.message or f"code {status.code}"


def _reference(body: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The task body as the reference it should be (``{kind, v, order_id}``), or why it is not."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None, f"not JSON ({len(body)} bytes)"
    if not isinstance(parsed, dict) or not all(field in parsed for field in REFERENCE_FIELDS):
        return None, f"not a task reference (fields: {', '.join(sorted(parsed)) if isinstance(parsed, dict) else '-'})"
    return {field: parsed[field] for field in REFERENCE_FIELDS}, None


def task_view(task: Any, now: datetime) -> TaskView:
    """A ``tasks_v2.Task`` as the console shows it."""
    first = task.first_attempt if "first_attempt" in task else None
    last = task.last_attempt if "last_attempt" in task else None
    body, problem = _reference(task.http_request.body) if task.http_request.body else (None, None)
    return TaskView(task.name.rsplit("/", 1)[-1], task.name, task_state(task, now), _moment(task.schedule_time),
                    _moment(task.create_time), task.dispatch_count, task.response_count,
                    _moment(first.dispatch_time) if first else None, _moment(last.dispatch_time) if last else None,
                    _answer(last), task.http_request.url, body, problem)


def task_page(console: Console, name: str, page_token: str, now: datetime) -> tuple[list[TaskView], str]:
    """One page of the queue's tasks (``ListTasks``, BASIC view: no bodies) and the next page's token."""
    path = queue_path(console.catalog.project, console.catalog.region, name)
    pager = console.tasks.list_tasks(request={"parent": path, "page_size": TASK_PAGE_SIZE, "page_token": page_token},
                                     timeout=10)
    page = next(iter(pager.pages))
    return [task_view(task, now) for task in page.tasks], page.next_page_token


def task_path(console: Console, name: str, task_id: str) -> str:
    """``projects/…/queues/NAME/tasks/TASK_ID``."""
    return f"{queue_path(console.catalog.project, console.catalog.region, name)}/tasks/{task_id}"


def get_task(console: Console, name: str, task_id: str, now: datetime) -> TaskView | None:
    """The task with its body (``GetTask``, FULL view), or ``None`` when it is gone."""
    try:
        task = console.tasks.get_task(request={"name": task_path(console, name, task_id),
                                               "response_view": tasks_v2.Task.View.FULL}, timeout=10)
    except gexc.NotFound:
        return None
    return task_view(task, now)


def apply_task_action(console: Console, name: str, task_id: str, action: str) -> str:
    """Run the task now (``RunTask``) or delete it (``DeleteTask``); return what happened."""
    path = task_path(console, name, task_id)
    if action == "run":
        console.tasks.run_task(request={"name": path}, timeout=10)
        return f"{task_id}: dispatched now (Cloud Tasks deletes it once the handler answers 2xx)"
    console.tasks.delete_task(request={"name": path}, timeout=10)
    return f"{task_id}: deleted from {name}"
