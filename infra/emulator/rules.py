"""Cloud Tasks' limits on queues and tasks, checked before anything is stored.

Each check raises INVALID_ARGUMENT with a message that names the field and says what is
allowed, so a developer can fix the request without reading the reference.
"""

from __future__ import annotations

import urllib.parse

from ordertasks.infra.emulator import errors
from ordertasks.infra.emulator.errors import invalid
from ordertasks.infra.emulator.model import (
    MAX_DEADLINE, MAX_SCHEDULE_AHEAD, MAX_TASK_BYTES, MIN_DEADLINE, PROJECT_ID, QUEUE_ID, TASK_ID, TASK_NAME,
    LOCATION_ID, Queue, RetryConfig, Task,
)


def check_parent(project: str, location: str) -> None:
    """Project and location ids must look like ids."""
    if not PROJECT_ID.match(project):
        raise invalid(f"parent: invalid project id {project!r}")
    if not LOCATION_ID.match(location):
        raise invalid(f"parent: invalid location id {location!r}")


def check_queue_id(queue_id: str, field: str = "queue.name") -> None:
    """Queue ids are 1-100 characters of letters, digits and hyphens."""
    if not QUEUE_ID.match(queue_id):
        raise invalid(f"{field}: invalid queue id {queue_id!r}; use 1-100 characters of [A-Za-z0-9-]")


def check_task_id(task_id: str, field: str = "task.name") -> None:
    """Task ids are 1-500 characters of letters, digits, hyphens and underscores."""
    if not TASK_ID.match(task_id):
        raise invalid(f"{field}: invalid task id {task_id!r}; use 1-500 characters of [A-Za-z0-9_-]")


def check_task_name(parent: str, name: str) -> None:
    """A task name given at creation: well formed, in ``parent``, with a valid id (Cloud Tasks' messages)."""
    if not TASK_NAME.match(name):
        raise invalid(errors.TASK_NAME_FORMAT)
    queue, _, task_id = name.rpartition("/tasks/")
    if queue != parent:
        raise errors.task_in_other_queue(parent, queue)
    if not TASK_ID.match(task_id):
        raise errors.invalid_task_id(task_id)


def check_queue(queue: Queue) -> None:
    """Rate and retry settings within Cloud Tasks' bounds."""
    rate = queue.rate_limits
    if not 0 <= rate.max_dispatches_per_second <= 500:
        raise invalid("queue.rateLimits.maxDispatchesPerSecond must be between 0 and 500 "
                      f"(got {rate.max_dispatches_per_second:g}); use more queues for more throughput")
    if not 0 <= rate.max_concurrent_dispatches <= 5000:
        raise invalid("queue.rateLimits.maxConcurrentDispatches must be between 0 and 5000 "
                      f"(got {rate.max_concurrent_dispatches})")
    check_retry(queue.retry_config, "queue.retryConfig")


def check_retry(retry: RetryConfig, path: str) -> None:
    """A queue's or a task's retry settings within Cloud Tasks' bounds; messages name ``path``."""
    if retry.max_attempts < -1:
        raise invalid(f"{path}.maxAttempts must be -1 (unlimited) or positive (got {retry.max_attempts})")
    if retry.max_doublings < 0:
        raise invalid(f"{path}.maxDoublings must be >= 0 (got {retry.max_doublings})")
    if retry.min_backoff < 0:
        raise invalid(f"{path}.minBackoff must be >= 0s (got {retry.min_backoff:g}s)")
    if retry.max_retry_duration < 0:
        raise invalid(f"{path}.maxRetryDuration must be >= 0s (got {retry.max_retry_duration:g}s)")
    if retry.min_backoff > retry.max_backoff:
        raise invalid(f"{path}.minBackoff ({retry.min_backoff:g}s) must not exceed "
                      f"{path}.maxBackoff ({retry.max_backoff:g}s)")


def check_url(url: str) -> None:
    """An HTTP task's URL: http(s), a host, at most 2083 characters, nothing unsendable."""
    if not url:
        raise invalid("task.httpRequest.url is required")
    if not url.startswith(("http://", "https://")) or len(url) > 2083:
        raise invalid(f"task.httpRequest.url must start with http:// or https:// and be at most 2083 "
                      f"characters (got {url[:80]!r})")
    parts = urllib.parse.urlsplit(url)
    try:
        parts.port
    except ValueError:
        raise invalid(f"task.httpRequest.url has an invalid port (got {url[:80]!r})") from None
    if not parts.hostname or any(c == " " or ord(c) < 0x20 or c == "\x7f" for c in url):
        raise invalid(f"task.httpRequest.url must name a host and contain no spaces or control characters "
                      f"(percent-encode them; got {url[:80]!r})")


def check_task(task: Task, now: float) -> None:
    """URL, size, schedule and deadline of a task about to be created."""
    req = task.http_request
    if task.app_engine is None:
        check_url(req.url)
    size = len(req.body) + len(req.url) + sum(len(k) + len(v) for k, v in req.headers.items())
    if size > MAX_TASK_BYTES:
        raise invalid(f"task.httpRequest.body: task size {size} bytes exceeds the 1 MiB ({MAX_TASK_BYTES} bytes) "
                      "limit; store large payloads elsewhere and send a reference")
    if task.schedule_time > now + MAX_SCHEDULE_AHEAD:
        raise invalid("task.scheduleTime must be at most 30 days in the future")
    if not MIN_DEADLINE <= task.dispatch_deadline <= MAX_DEADLINE:
        raise invalid(f"task.dispatchDeadline must be between 15s and 1800s (got {task.dispatch_deadline:g}s)")
    if task.retry_config is not None:
        check_retry(task.retry_config, "task.retryConfig")
