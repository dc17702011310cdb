"""``InProcessCloudTasks``: the part of a ``CloudTasksClient`` the library calls, in memory.

The third backend of the task queue, beside Cloud Tasks and the local emulator
(``infra/emulator``): ``create_task``, ``get_task``, ``delete_task`` and ``list_tasks`` with
the same names, schedules and errors, on an injected clock instead of the wall clock.
``tests/library/test_testing_queue_contract.py`` runs one contract over it and the emulator:

- a queue is one of the catalog's; any other parent is ``NotFound``;
- a task's name is ``<parent>/tasks/<id>``; creating a name that exists, or one deleted or
  finished within the last hour, is ``AlreadyExists`` (a ``Conflict``: what the Enqueuer
  reads as "already scheduled"); a task without a name gets a generated one;
- a schedule time in the past (or none) means now;
- ``get_task`` and ``delete_task`` of a name not held are ``NotFound``.

Nothing is dispatched by itself: ``due(now)`` says which tasks have come due and the caller
(``producer.local_tasks``) delivers them, then calls ``finish`` or ``retry_at``.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import tasks_v2

from ordertasks.handlers.config import Catalog, QueueConfig
from ordertasks.handlers.ports import Clock
from ordertasks.producer.enqueue import queue_path

DEDUP_WINDOW = timedelta(hours=1)    # how long Cloud Tasks refuses a finished or deleted task's name


@dataclass
class QueuedTask:
    """A task the queue holds, with the counts Cloud Tasks keeps for its ``X-CloudTasks-*`` headers."""

    task: tasks_v2.Task
    queue: QueueConfig
    dispatch_count: int = 0          # attempts so far: the next attempt's TaskRetryCount
    execution_count: int = 0         # attempts answered with other than a 5xx: TaskExecutionCount
    first_attempt_at: datetime | None = None

    @property
    def name(self) -> str:
        """The full task name."""
        return str(self.task.name)

    @property
    def schedule_time(self) -> datetime:
        """When the task (or its next retry) is due."""
        due: datetime = self.task.schedule_time
        return due

    def exhausted(self, now: datetime) -> bool:
        """True when Cloud Tasks gives up after a failed attempt: both of the queue's limits
        (``max_attempts``, ``max_retry_duration_seconds``) are used up."""
        queue, first = self.queue, self.first_attempt_at or now
        attempts_used = queue.max_attempts != -1 and self.dispatch_count >= queue.max_attempts
        duration_used = (queue.max_retry_duration_seconds <= 0
                         or (now - first).total_seconds() >= queue.max_retry_duration_seconds)
        return attempts_used and duration_used


class InProcessCloudTasks:
    """The catalog's queues in memory (see the module docstring); thread-safe."""

    def __init__(self, catalog: Catalog, clock: Clock) -> None:
        self.clock = clock
        self.queues = {queue_path(catalog.project, catalog.region, name): config
                       for name, config in catalog.queues.items()}
        self._held: dict[str, QueuedTask] = {}
        self._gone: dict[str, datetime] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # --- the client surface -------------------------------------------------------------

    def create_task(self, parent: str | None = None, task: Any = None, *, request: Any = None,
                    **_options: Any) -> tasks_v2.Task:
        """CreateTask: hold a copy of ``task`` in queue ``parent``; ``AlreadyExists``, ``NotFound``."""
        parent, task = _field(request, "parent", parent), _field(request, "task", task)
        queue = self._queue(parent)
        with self._lock:
            held = self._new_task(parent, tasks_v2.Task(task or {}))
            self._refuse_taken(held.name)
            self._held[held.name] = QueuedTask(held, queue)
            return tasks_v2.Task(held)

    def get_task(self, name: str | None = None, *, request: Any = None, **_options: Any) -> tasks_v2.Task:
        """GetTask: the task called ``name``, or ``NotFound``."""
        return tasks_v2.Task(self._task(_field(request, "name", name)).task)

    def delete_task(self, name: str | None = None, *, request: Any = None, **_options: Any) -> None:
        """DeleteTask: gone now, its name refused for the dedup window; ``NotFound`` if not held."""
        self.finish(self._task(_field(request, "name", name)).name)

    def list_tasks(self, parent: str | None = None, *, request: Any = None, **_options: Any) -> list[tasks_v2.Task]:
        """ListTasks: the tasks of queue ``parent``, by name."""
        parent = _field(request, "parent", parent)
        self._queue(parent)
        with self._lock:
            return [tasks_v2.Task(t.task) for name, t in sorted(self._held.items())
                    if name.rsplit("/tasks/", 1)[0] == parent]

    def close(self) -> None:
        """Nothing to release (the real client's transport has a channel)."""

    # --- what the deliverer uses --------------------------------------------------------

    def due(self, now: datetime) -> list[QueuedTask]:
        """The tasks due at ``now``, earliest first."""
        with self._lock:
            found = [t for t in self._held.values() if t.schedule_time <= now]
        return sorted(found, key=lambda t: (t.schedule_time, t.name))

    def next_due(self) -> datetime | None:
        """When the earliest task held is due; ``None`` when the queues are empty."""
        with self._lock:
            return min((t.schedule_time for t in self._held.values()), default=None)

    def holds(self, name: str) -> bool:
        """True while the task called ``name`` is in its queue (not finished nor deleted)."""
        return name in self._held

    def retry_at(self, name: str, when: datetime) -> None:
        """Keep the task for another attempt at ``when``."""
        with self._lock:
            held = self._held.get(name)
            if held is not None:
                held.task.schedule_time = when

    def finish(self, name: str) -> None:
        """The task is done with (answered 2xx, given up, or deleted): remove it, keep its name."""
        with self._lock:
            self._held.pop(name, None)
            self._gone[name] = self.clock.now() + DEDUP_WINDOW

    def __len__(self) -> int:
        return len(self._held)

    # --- rules --------------------------------------------------------------------------

    def _queue(self, parent: str) -> QueueConfig:
        config = self.queues.get(parent)
        if config is None:
            raise gexc.NotFound(f"Queue {parent!r} does not exist: the catalog's queues are {sorted(self.queues)}")
        return config

    def _task(self, name: str) -> QueuedTask:
        self._queue(name.rsplit("/tasks/", 1)[0])
        held = self._held.get(name)
        if held is None:
            raise gexc.NotFound(f"Task {name!r} does not exist (or it finished or was deleted recently)")
        return held

    def _new_task(self, parent: str, task: tasks_v2.Task) -> tasks_v2.Task:
        now = self.clock.now()
        if not task.name:
            task.name = f"{parent}/tasks/{next(self._ids):019d}"
        elif task.name.rsplit("/tasks/", 1)[0] != parent:
            raise gexc.InvalidArgument(f"task name {task.name!r} is not in queue {parent!r}")
        given = task.schedule_time if "schedule_time" in task else None
        task.schedule_time = max(given, now) if given is not None else now
        task.create_time = now
        return task

    def _refuse_taken(self, name: str) -> None:
        if name in self._held:
            raise gexc.AlreadyExists(f"Requested entity already exists: task {name!r}")
        gone_until = self._gone.get(name)
        if gone_until is not None and gone_until > self.clock.now():
            raise gexc.AlreadyExists(f"The task {name!r} cannot be created: a task with this name existed recently")


def _field(request: Any, key: str, given: Any) -> Any:
    """``key`` from a request object or dict when one was passed, else the keyword argument."""
    if request is None:
        return given
    return request.get(key) if isinstance(request, dict) else getattr(request, key)
