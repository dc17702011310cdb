"""A queue's backlog through the Cloud Tasks API: tasks due now versus scheduled later.

"Backlog" means tasks whose ``scheduleTime`` has passed: work Cloud Tasks owes the handler
now. A 7-day review request waiting for its day is *scheduled*, not backlog; a task waiting
out its retry backoff (it was dispatched before: ``dispatch_count`` > 0) is *retrying*, counted
apart, never as scheduled. Cloud Tasks v2
has no count call, so the queue is listed page by page (1 000 tasks a page, the API's
maximum, BASIC view without bodies) and the walk stops after ``limit`` tasks; the answer
then says it is a lower bound (``capped``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SCAN_LIMIT = 5000
PAGE_SIZE = 1000


@dataclass(frozen=True)
class Backlog:
    """Tasks of one queue: due now, scheduled later (never dispatched yet), the oldest due one;
    ``capped`` when the walk stopped at the limit (the counts are then lower bounds);
    ``retrying``: waiting out a retry backoff (in neither ``due_now`` nor ``later``)."""

    due_now: int
    later: int
    oldest_due: datetime | None
    capped: bool
    retrying: int = 0

    def oldest_due_age(self, now: datetime) -> float | None:
        """Seconds the oldest due task has been waiting, or ``None`` when nothing is due."""
        return None if self.oldest_due is None else max(0.0, (now - self.oldest_due).total_seconds())


def _aware(moment: Any) -> datetime | None:
    if not moment:
        return None
    value = moment if isinstance(moment, datetime) else moment.ToDatetime()
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def queue_backlog(client: Any, parent: str, now: datetime, limit: int = SCAN_LIMIT, timeout: float = 10.0) -> Backlog:
    """Walk at most ``limit`` tasks of the queue ``parent`` and classify them by schedule."""
    due = later = retrying = seen = 0
    oldest: datetime | None = None
    for task in client.list_tasks(request={"parent": parent, "page_size": PAGE_SIZE}, timeout=timeout):
        if seen >= limit:
            return Backlog(due, later, oldest, capped=True, retrying=retrying)
        seen += 1
        when = _aware(task.schedule_time) or now
        if when <= now:
            due += 1
            oldest = when if oldest is None or when < oldest else oldest
        elif getattr(task, "dispatch_count", 0):
            retrying += 1
        else:
            later += 1
    return Backlog(due, later, oldest, capped=False, retrying=retrying)
