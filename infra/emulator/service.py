"""The Cloud Tasks API operations on the emulator's state: queues, tasks, tombstones.

State lives in memory and is written through to :class:`~infra.emulator.store.Store`.
Requests that create or change something wait for the commit before they answer, so an
acknowledged change survives ``kill -9``.  The service knows nothing about HTTP: it takes
and returns model objects and raises :class:`~infra.emulator.errors.RpcError`.  It tells a
:class:`Scheduler` (the dispatcher) about tasks and queues it should act on.

Cancellation.  A change is made in memory first (so a concurrent request sees a task name
as taken) and then awaits its commit.  Its caller may be cancelled during that await: a gRPC
client cancels, the server stops and cancels its handlers.  Had the change stopped there,
memory, disk and dispatcher would disagree: a task listed but never handed to the
dispatcher, whose name a retry gets ALREADY_EXISTS for (issue 27).  So every change, once
made in memory, runs its commit and its hand-off to the dispatcher to the end in a task of
its own (:func:`run_to_completion`); a failed commit undoes the in-memory change.  The
invariant: a change either happened everywhere (memory, disk, dispatcher) or nowhere, and a
cancelled caller learns of its cancellation only once that is settled.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import copy
import dataclasses
import logging
import re
import secrets
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Protocol, TypeVar

from ordertasks.infra.emulator import errors, iam, routing, rules, store as db, wire
from ordertasks.infra.emulator.cmek import CmekConfigs
from ordertasks.infra.emulator.errors import RpcError, invalid
from ordertasks.infra.emulator.model import Queue, QueueState, Task
from ordertasks.infra.emulator.operations import Operations
from ordertasks.infra.emulator.store import Store

log = logging.getLogger("ordertasks.emulator")
MAX_PAGE = 1000
# Generous for development and the benchmarks; a runaway producer meets RESOURCE_EXHAUSTED
# naming the flag instead of filling memory and disk (``--max-queues``, ``--max-tasks``).
DEFAULT_MAX_QUEUES = 1000
DEFAULT_MAX_TASKS = 1_000_000
_STATE_FILTER = re.compile(r"^\s*state\s*[:=]\s*\"?([A-Z_]+)\"?\s*$")
T = TypeVar("T")


class Scheduler(Protocol):
    """What the service tells the dispatcher; a no-op implementation serves read-only tools."""

    def queue_updated(self, queue: Queue) -> None:
        """A queue was created, changed, paused or resumed."""

    def queue_deleted(self, name: str) -> None:
        """A queue and all its tasks are gone."""

    def task_added(self, task: Task) -> None:
        """A task was created (durably) and waits for its schedule time."""

    def run_now(self, task: Task) -> bool:
        """Dispatch ``task`` now, ignoring pause and rate limits; False if it is already in flight."""


class NoScheduler:
    """A scheduler that dispatches nothing."""

    def queue_updated(self, queue: Queue) -> None:
        """Ignore."""

    def queue_deleted(self, name: str) -> None:
        """Ignore."""

    def task_added(self, task: Task) -> None:
        """Ignore."""

    def run_now(self, task: Task) -> bool:
        """Ignore."""
        return True


async def run_to_completion(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to its end even if the caller is cancelled meanwhile; then re-raise the
    cancellation (see "Cancellation" in the module docstring)."""
    # Not asyncio.shield alone: it raises in the caller at once, while the commit is still
    # pending, so whoever cancelled (a stopping server about to close the store and stop the
    # dispatcher, a test looking at the state) would go on before the change is settled.
    job = asyncio.ensure_future(work)
    cancelled: asyncio.CancelledError | None = None
    while not job.done():
        try:
            await asyncio.wait([job])
        except asyncio.CancelledError as exc:
            cancelled = exc
    if cancelled is None:
        return job.result()
    if not job.cancelled():
        job.exception()  # retrieved here: the cancelled caller will not, and asyncio would log it
    raise cancelled


def page_token(last: str) -> str:
    """An opaque page token: the last name on the page."""
    return base64.urlsafe_b64encode(last.encode()).decode("ascii")


def _after_token(names: list[str], token: str) -> int:
    if not token:
        return 0
    try:
        last = base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise invalid(f"pageToken: invalid page token {token!r}; pass nextPageToken from the previous page") from None
    return bisect.bisect_right(names, last)


def paginate(names: list[str], page_size: int, token: str) -> tuple[list[str], str]:
    """One page of sorted ``names`` after ``token`` and the token of the next page ('' if none)."""
    if page_size < 0:
        raise invalid(f"pageSize must be >= 0 (got {page_size})")
    size = min(page_size or MAX_PAGE, MAX_PAGE)
    start = _after_token(names, token)
    page = names[start:start + size]
    more = start + size < len(names)
    return page, page_token(page[-1]) if more and page else ""


class TasksService:
    """Queues and tasks of every project and location the emulator has seen."""

    def __init__(self, store: Store, clock: Callable[[], float], dedup_window: float = 3600.0,
                 queue_recreate_window: float = 0.0, max_queues: int = DEFAULT_MAX_QUEUES,
                 max_tasks: int = DEFAULT_MAX_TASKS) -> None:
        self.store = store
        self.clock = clock
        self.dedup_window = dedup_window
        self.queue_recreate_window = queue_recreate_window
        self.max_queues = max_queues
        self.max_tasks = max_tasks
        self.scheduler: Scheduler = NoScheduler()
        self.queues: dict[str, Queue] = {}
        self.tasks: dict[str, dict[str, Task]] = {}
        self.tombstones: dict[str, float] = {}
        self.cmek = CmekConfigs(store)
        self.operations = Operations()

    def restore(self, snapshot: db.Snapshot) -> None:
        """Adopt the state read from the database at start."""
        for queue in snapshot.queues:
            self.queues[queue.name] = queue
            self.tasks[queue.name] = {}
        for task in snapshot.tasks:
            self.tasks.setdefault(task.queue_name, {})[task.name] = task
        self.tombstones = dict(snapshot.tombstones)
        self.cmek.keys = dict(snapshot.cmek)

    def start_dispatching(self, scheduler: Scheduler) -> None:
        """Hand every queue and task to ``scheduler``."""
        self.scheduler = scheduler
        for queue in self.queues.values():
            scheduler.queue_updated(queue)
            for task in self.tasks[queue.name].values():
                scheduler.task_added(task)

    # -- lookups ---------------------------------------------------------------------------

    def queue(self, name: str) -> Queue:
        """The queue called ``name`` or NOT_FOUND."""
        queue = self.queues.get(name)
        if queue is None:
            raise errors.not_found(errors.QUEUE_NOT_FOUND)
        return queue

    def task(self, name: str) -> Task:
        """The live task called ``name`` or NOT_FOUND (saying so if it finished recently)."""
        task = self.tasks.get(name.rsplit("/tasks/", 1)[0], {}).get(name)
        if task is not None:
            return task
        self.queue(name.rsplit("/tasks/", 1)[0])
        if self._recently_gone(name):
            raise errors.not_found(errors.TASK_GONE_RECENTLY)
        raise errors.not_found()

    def live(self, task: Task) -> bool:
        """True while ``task`` (this very object) is still in its queue."""
        return self.tasks.get(task.queue_name, {}).get(task.name) is task

    def _recently_gone(self, name: str) -> bool:
        expires = self.tombstones.get(name)
        return expires is not None and expires > self.clock()

    def task_count(self) -> int:
        """Tasks held in every queue (one ``len`` per queue: queues are capped)."""
        return sum(len(tasks) for tasks in self.tasks.values())

    def _check_room_for_queue(self) -> None:
        if len(self.queues) >= self.max_queues:
            raise errors.resource_exhausted(
                f"the emulator already holds {len(self.queues)} queues, the most --max-queues {self.max_queues} "
                "allows: delete queues you no longer need, or restart it with a larger --max-queues")

    def _check_room_for_task(self) -> None:
        held = self.task_count()
        if held >= self.max_tasks:
            raise errors.resource_exhausted(
                f"the emulator already holds {held} tasks, the most --max-tasks {self.max_tasks} allows: let "
                "tasks finish, purge or delete some, or restart it with a larger --max-tasks")

    # -- queues ----------------------------------------------------------------------------

    def list_queues(self, parent: str, page_size: int, token: str, filter_: str) -> tuple[list[Queue], str]:
        """Queues under ``projects/P/locations/L``, by name, optionally ``state: PAUSED``."""
        wanted = self._state_filter(filter_)
        names = sorted(n for n, q in self.queues.items()
                       if n.startswith(parent + "/queues/") and (wanted is None or q.state == wanted))
        page, next_token = paginate(names, page_size, token)
        return [self.queues[n] for n in page], next_token

    @staticmethod
    def _state_filter(filter_: str) -> QueueState | None:
        if not filter_.strip():
            return None
        match = _STATE_FILTER.match(filter_)
        if not match or match.group(1) not in QueueState.__members__:
            raise invalid(f"filter: unsupported filter {filter_!r}; the emulator supports \"state: PAUSED\" "
                          "(or RUNNING, DISABLED)")
        return QueueState[match.group(1)]

    async def create_queue(self, parent: str, body: dict[str, Any]) -> Queue:
        """CreateQueue: a new queue with defaults for every field not given."""
        self._check_room_for_queue()
        name = self._queue_name_in(parent, body)
        if name in self.queues:
            raise errors.already_exists()
        if self._recently_gone(name) and self.queue_recreate_window > 0:
            raise errors.failed_precondition(errors.QUEUE_EXISTED_RECENTLY)
        queue = Queue(name=name)
        wire.apply_queue_fields(queue, body, wire.mask_paths(body))
        rules.check_queue(queue)
        return await self._save_new_queue(queue)

    async def _save_new_queue(self, queue: Queue) -> Queue:
        self.queues[queue.name] = queue
        self.tasks.setdefault(queue.name, {})
        tombstone = self.tombstones.pop(queue.name, None)
        await self._write_through([db.put_queue(queue)], "the queue", lambda: self._announce(queue.name),
                                  lambda: self._unsave_queue(queue, tombstone))
        return queue

    def _unsave_queue(self, queue: Queue, tombstone: float | None) -> None:
        """Undo :meth:`_save_new_queue` after a failed commit (unless the queue changed since)."""
        if self.queues.get(queue.name) is not queue:
            return
        del self.queues[queue.name]
        self.tasks.pop(queue.name, None)
        if tombstone is not None:
            self.tombstones[queue.name] = tombstone

    def _announce(self, name: str) -> None:
        """Tell the dispatcher the queue's current state (if it still exists)."""
        # The current state, not the one this request wrote: a later change may have landed
        # first, and announcing an older state would leave the dispatcher behind memory.
        queue = self.queues.get(name)
        if queue is not None:
            self.scheduler.queue_updated(queue)

    async def _write_through(self, ops: list[db.Op], what: str, done: Callable[[], None],
                             undo: Callable[[], None]) -> None:
        """Commit ``ops`` (made in memory already), then ``done()``; on a failed commit ``undo()``
        and raise INTERNAL.  Runs to the end even if the caller is cancelled meanwhile."""
        try:
            committed = self.store.commit_now(ops)  # no await: a cancel cannot land half-way
        except Exception as exc:
            undo()
            raise RpcError("INTERNAL", f"could not store {what}: {exc}") from exc
        if committed:
            done()
            return
        await run_to_completion(self._commit_then(ops, what, done, undo))

    async def _commit_then(self, ops: list[db.Op], what: str, done: Callable[[], None],
                           undo: Callable[[], None]) -> None:
        try:
            await self.store.write(ops)
        except Exception as exc:
            undo()
            raise RpcError("INTERNAL", f"could not store {what}: {exc}") from exc
        done()

    @staticmethod
    def _queue_name_in(parent: str, body: dict[str, Any]) -> str:
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise invalid("queue.name is required, e.g. projects/P/locations/L/queues/my-queue")
        prefix = parent + "/queues/"
        if not name.startswith(prefix):
            raise invalid(f"queue.name {name!r} must start with the parent {prefix!r}")
        rules.check_queue_id(name[len(prefix):])
        return name

    async def update_queue(self, name: str, body: dict[str, Any], mask: list[str]) -> Queue:
        """UpdateQueue (PATCH): change the masked fields; creates the queue if it does not exist."""
        for path in mask:
            if not wire.known_mask_path(path):
                raise invalid(f"updateMask: unknown or read-only field {path!r}; updatable: rateLimits.*, retryConfig.*")
        if name not in self.queues:
            parent = name.rsplit("/queues/", 1)[0]
            return await self.create_queue(parent, {**body, "name": name})
        current = self.queues[name]
        candidate = copy.deepcopy(current)
        wire.apply_queue_fields(candidate, body, mask or wire.mask_paths(body))
        rules.check_queue(candidate)
        return await self._replace_queue(candidate)

    async def _replace_queue(self, queue: Queue) -> Queue:
        previous = self.queues[queue.name]
        self.queues[queue.name] = queue
        await self._write_through([db.put_queue(queue)], "the queue", lambda: self._announce(queue.name),
                                  lambda: self._unreplace_queue(queue, previous))
        return queue

    def _unreplace_queue(self, queue: Queue, previous: Queue) -> None:
        """Undo :meth:`_replace_queue` after a failed commit (unless the queue changed since)."""
        if self.queues.get(queue.name) is queue:
            self.queues[queue.name] = previous
            self._announce(queue.name)  # a concurrent change's commit may have announced ours

    async def delete_queue(self, name: str) -> None:
        """DeleteQueue: the queue and its tasks go; the name is remembered for the re-create window."""
        self.queue(name)
        del self.queues[name]
        self.tasks.pop(name, None)
        ops = db.delete_queue(name)
        if self.queue_recreate_window > 0:
            self.tombstones[name] = self.clock() + self.queue_recreate_window
            ops.append(db.put_tombstone(name, self.tombstones[name]))
        self.scheduler.queue_deleted(name)
        await self._write_through(ops, "the queue deletion", _nothing, _nothing)

    async def set_state(self, name: str, state: QueueState) -> Queue:
        """PauseQueue / ResumeQueue."""
        return await self._replace_queue(dataclasses.replace(self.queue(name), state=state))

    async def purge_queue(self, name: str) -> Queue:
        """PurgeQueue: delete every task created up to now."""
        now = self.clock()
        queue = dataclasses.replace(self.queue(name), purge_time=now)
        doomed = [t for t in self.tasks[name].values() if t.create_time <= now]
        ops = self._forget(doomed) + [db.put_queue(queue)]
        self.queues[name] = queue
        await self._write_through(ops, "the purge", _nothing, _nothing)
        return queue

    # -- IAM -------------------------------------------------------------------------------

    def get_iam_policy(self, name: str) -> dict[str, Any]:
        """GetIamPolicy: the queue's policy."""
        return iam.policy_to_json(self.queue(name).iam_policy)

    async def set_iam_policy(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """SetIamPolicy: replace the queue's policy if the request's etag (when given) is current."""
        current = self.queue(name)
        queue = dataclasses.replace(current, iam_policy=iam.replace_policy(current.iam_policy, body))
        await self._replace_queue(queue)
        return iam.policy_to_json(queue.iam_policy)

    def test_iam_permissions(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """TestIamPermissions: every valid Cloud Tasks permission asked about."""
        self.queue(name)
        granted = iam.granted_permissions(body)
        return {"permissions": granted} if granted else {}

    # -- tasks -----------------------------------------------------------------------------

    def list_tasks(self, parent: str, page_size: int, token: str) -> tuple[list[Task], str]:
        """Tasks of a queue, by name."""
        tasks = self.tasks.get(parent)
        if tasks is None:
            self.queue(parent)
            tasks = {}
        page, next_token = paginate(sorted(tasks), page_size, token)
        return [tasks[n] for n in page], next_token

    async def create_task(self, parent: str, body: Any) -> Task:
        """CreateTask: validate, dedupe the name, store durably, then hand to the dispatcher."""
        self._check_room_for_task()
        self.queue(parent)
        now = self.clock()
        task = self._new_task(parent, body, now)
        tasks = self.tasks[parent]
        if task.name in tasks:
            raise errors.already_exists(errors.TASK_EXISTS)
        if self._recently_gone(task.name):
            raise errors.already_exists(errors.TASK_EXISTED_RECENTLY)
        tasks[task.name] = task  # reserve the name before yielding to other requests
        await self._write_through([db.put_task(task)], "the task", lambda: self._schedule(task),
                                  lambda: self._unreserve(task))
        return task

    def _schedule(self, task: Task) -> None:
        """Hand a committed task to the dispatcher, unless it was deleted meanwhile."""
        if self.live(task):
            self.scheduler.task_added(task)

    def _unreserve(self, task: Task) -> None:
        """Free the name of a task whose commit failed."""
        if self.live(task):
            del self.tasks[task.queue_name][task.name]

    async def buffer_task(self, parent: str, task_id: str, body: Any) -> Task:
        """BufferTask: a task built from the queue's ``httpTarget`` and the request's HttpBody."""
        target = self.queue(parent).http_target
        if target is None or target.uri_override is None or not target.uri_override.host:
            raise errors.failed_precondition(
                "BufferTask needs a queue with an HTTP target: set the queue's httpTarget.uriOverride (with a host), "
                "e.g. gcloud tasks queues update QUEUE --http-uri-override=host:HOST,path:/PATH")
        http_body = wire.http_body_from_json(body.get("body") if isinstance(body, dict) else None, "body")
        headers = dict(target.header_overrides)
        if http_body.content_type:
            headers["Content-Type"] = http_body.content_type
        task_json = {"httpRequest": {"url": routing.buffered_url(target.uri_override),
                                     "httpMethod": (target.http_method or 1), "headers": headers,
                                     "body": base64.b64encode(http_body.data).decode("ascii")}}
        if task_id:
            task_json["name"] = f"{parent}/tasks/{task_id}"
        return await self.create_task(parent, {"task": task_json})

    def _new_task(self, parent: str, body: Any, now: float) -> Task:
        if not isinstance(body, dict) or not isinstance(body.get("task"), dict):
            raise invalid("task is required: send {\"task\": {\"httpRequest\": {\"url\": ...}}}")
        task = wire.task_from_json(body["task"], now)
        task.name = self._task_name(parent, task.name)
        task.create_time = now
        task.schedule_time = max(task.schedule_time, now)
        task.dispatch_count = task.response_count = task.execution_count = 0
        task.first_attempt = task.last_attempt = None
        headers = {k: v for k, v in task.http_request.headers.items() if k.lower() != "user-agent"}
        if task.app_engine is None:
            headers["User-Agent"] = "Google-Cloud-Tasks"
        task.http_request.headers = headers
        rules.check_task(task, now)
        return task

    @staticmethod
    def _task_name(parent: str, given: str) -> str:
        if not given:
            return f"{parent}/tasks/{secrets.randbelow(10**19):019d}"
        rules.check_task_name(parent, given)
        return given

    async def delete_task(self, name: str) -> None:
        """DeleteTask: gone now, name kept for the dedup window."""
        task = self.task(name)
        await self._write_through(self._forget([task]), "the deletion", _nothing, lambda: self._unforget(task))

    def _unforget(self, task: Task) -> None:
        """Bring back a task whose deletion failed to commit (it is still stored)."""
        tasks = self.tasks.get(task.queue_name)
        if tasks is None or task.name in tasks:
            return
        tasks[task.name] = task
        self.tombstones.pop(task.name, None)
        self.scheduler.task_added(task)

    def _forget(self, tasks: Iterable[Task]) -> list[db.Op]:
        """Drop tasks from memory and tombstone their names; return the matching writes."""
        ops: list[db.Op] = []
        expires = self.clock() + self.dedup_window
        for task in tasks:
            self.tasks.get(task.queue_name, {}).pop(task.name, None)
            self.tombstones[task.name] = expires
            ops += [db.delete_task(task.name), db.put_tombstone(task.name, expires)]
        return ops

    def run_task(self, name: str) -> Task:
        """RunTask: dispatch now regardless of pause and rate limits."""
        task = self.task(name)
        self.scheduler.run_now(task)
        return task

    # -- test-suite controls ----------------------------------------------------------------

    async def reset(self, drop_queues: bool) -> None:
        """Drop every task, tombstone and operation; with ``drop_queues`` every queue and CMEK config too
        (no re-create window)."""
        for tasks in self.tasks.values():
            tasks.clear()
        self.tombstones.clear()
        self.operations.clear()
        ops: list[db.Op] = [("DELETE FROM tasks", ()), ("DELETE FROM tombstones", ())]
        if drop_queues:
            for name in list(self.queues):
                self.scheduler.queue_deleted(name)
            self.queues.clear()
            self.tasks.clear()
            self.cmek.keys.clear()
            ops += [("DELETE FROM queues", ()), ("DELETE FROM cmek_configs", ())]
        await self._write_through(ops, "the reset", _nothing, _nothing)

    def due_tasks(self) -> int:
        """How many tasks of running queues are due now (waiting only for a dispatch slot)."""
        now = self.clock()
        return sum(1 for name, queue in self.queues.items() if queue.state == QueueState.RUNNING
                   for task in self.tasks.get(name, {}).values() if task.schedule_time <= now)

    # -- called by the dispatcher ------------------------------------------------------------

    def finish_task(self, task: Task) -> None:
        """The task completed or ran out of attempts: forget it (write without waiting)."""
        if self.live(task):
            self.store.write_later(self._forget([task]))

    def save_task_later(self, task: Task) -> None:
        """Persist attempt counters and the next schedule time (write without waiting)."""
        if self.live(task):
            self.store.write_later([db.put_task(task)])

    def drop_expired_tombstones(self) -> None:
        """Forget names whose dedup window has passed."""
        now = self.clock()
        for name in [n for n, expires in self.tombstones.items() if expires <= now]:
            del self.tombstones[name]
        self.store.write_later([db.drop_tombstones_before(now)])


def _nothing() -> None:
    """Nothing to do after a commit, or nothing that can be undone after a failed one."""
