"""The Queues page: each catalog queue as Cloud Tasks reports it, plus what the stores saw.

State and rate/retry settings come from ``GetQueue`` (what is deployed, which may differ from
the catalog), due-now versus later from a bounded task listing (``producer.backlog``), and
"done / failed in the last hour" from aggregation queries on the stores (effects completed,
tasks that failed for good). Per-attempt dispatch counts live in Cloud Monitoring
(``cloudtasks.googleapis.com/queue/task_attempt_count``), not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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
