"""Durable state in SQLite (WAL): queues, tasks, name tombstones, CMEK configs and the signing key.

The emulator serves from memory and writes through to SQLite.  Every change joins one ordered
list of pending writes on the event loop; at the end of the loop's current turn the list is
committed as a single transaction (group commit: a burst of creates costs one fsync-free WAL
commit).  ``write()`` resolves once its change is committed (used before answering a create,
so an acknowledged task survives ``kill -9``); ``write_later()`` queues a change without
waiting (dispatch outcomes: losing one in a crash only means a task is delivered again).

A change whose caller waits for it and finds the writer thread idle is committed at once with
whatever is pending (``commit_now``): nothing is gained by waiting for the end of the turn
when the caller would wait anyway, and a sequential ``CreateTask`` then answers in the same
pass of the loop that read it.  Otherwise, where a batch is committed depends on who waits for it.  A batch someone awaits is committed
on the event loop itself: its caller waits for that commit anyway, and two hand-offs to and
from a thread cost a sequential CreateTask more than the commit (~0.07 ms of WAL append for
one task; no fsync in WAL with ``synchronous=NORMAL``, which still survives ``kill -9``).  A
batch nobody awaits (dispatch outcomes) goes to the writer thread, so that SQLite's work
overlaps the loop's.  Order is kept: while the thread holds a batch, nothing is committed on
the loop; what arrives meanwhile waits and goes out, in order, once the thread is done.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue as queue_mod
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ordertasks.infra.emulator import iam, wire
from ordertasks.infra.emulator.model import Queue, QueueState, RateLimits, RetryConfig, Task, View

log = logging.getLogger("ordertasks.emulator.store")

Op = tuple[str, Sequence[Any]]
Pending = tuple[Sequence[Op], "asyncio.Future[None] | None"]  # ops, and the future of who awaits them
SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (name TEXT PRIMARY KEY, queue TEXT NOT NULL, record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_by_queue ON tasks (queue);
CREATE TABLE IF NOT EXISTS tombstones (name TEXT PRIMARY KEY, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cmek_configs (location TEXT PRIMARY KEY, kms_key TEXT NOT NULL);
"""
_STOP = object()


@dataclass
class Snapshot:
    """Everything read back at start."""

    queues: list[Queue] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    tombstones: dict[str, float] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    cmek: dict[str, str] = field(default_factory=dict)  # location -> Cloud KMS key name


# -- records -------------------------------------------------------------------------------

def queue_record(queue: Queue) -> str:
    """A queue as stored: its wire form (enum names) plus its IAM policy."""
    record = wire.queue_to_json(queue, int_enums=False)
    record["_internal"] = {"iamPolicy": iam.policy_to_json(queue.iam_policy)}
    return json.dumps(record)


def queue_from_record(text: str) -> Queue:
    """Inverse of :func:`queue_record` (also reads the field-by-field records of earlier versions)."""
    raw = json.loads(text)
    if "rate_limits" in raw:
        return Queue(name=raw["name"], rate_limits=RateLimits(**raw["rate_limits"]),
                     retry_config=RetryConfig(**raw["retry_config"]), state=QueueState(raw["state"]),
                     purge_time=raw["purge_time"])
    queue = Queue(name=raw["name"], state=QueueState[raw.get("state", "RUNNING")])
    wire.apply_queue_fields(queue, raw, wire.mask_paths(raw))
    queue.purge_time = wire.parse_timestamp(raw["purgeTime"], "purgeTime") if raw.get("purgeTime") else None
    queue.iam_policy = iam.policy_from_json(raw.get("_internal", {}).get("iamPolicy", {}), "iamPolicy")
    return queue


def task_record(task: Task) -> str:
    """A task as stored: its FULL wire form plus the counters the wire does not show."""
    record = wire.task_to_json(task, View.FULL, int_enums=False)
    record["_internal"] = {"executionCount": task.execution_count, "retryReason": task.retry_reason,
                           "previousStatus": task.previous_status}
    return json.dumps(record)


def task_from_record(text: str) -> Task:
    """Inverse of :func:`task_record`."""
    raw = json.loads(text)
    task = wire.task_from_json(raw, now=0.0)
    internal = raw.get("_internal", {})
    task.execution_count = int(internal.get("executionCount", 0))
    task.retry_reason = str(internal.get("retryReason", ""))
    task.previous_status = internal.get("previousStatus")
    return task


# -- operations (SQL + parameters, executed by the writer thread) ---------------------------

def put_queue(queue: Queue) -> Op:
    """Insert or replace a queue."""
    return ("INSERT OR REPLACE INTO queues (name, record) VALUES (?, ?)", (queue.name, queue_record(queue)))


def delete_queue(name: str) -> list[Op]:
    """Remove a queue and every task in it."""
    return [("DELETE FROM queues WHERE name = ?", (name,)), ("DELETE FROM tasks WHERE queue = ?", (name,))]


def put_task(task: Task) -> Op:
    """Insert or replace a task."""
    return ("INSERT OR REPLACE INTO tasks (name, queue, record) VALUES (?, ?, ?)",
            (task.name, task.queue_name, task_record(task)))


def delete_task(name: str) -> Op:
    """Remove a task."""
    return ("DELETE FROM tasks WHERE name = ?", (name,))


def put_tombstone(name: str, expires: float) -> Op:
    """Remember a finished/deleted name until ``expires`` (dedup window)."""
    return ("INSERT OR REPLACE INTO tombstones (name, expires) VALUES (?, ?)", (name, expires))


def drop_tombstones_before(now: float) -> Op:
    """Forget names whose dedup window has passed."""
    return ("DELETE FROM tombstones WHERE expires <= ?", (now,))


def put_meta(key: str, value: str) -> Op:
    """Store a small piece of emulator state (the signing key)."""
    return ("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


class Store:
    """The SQLite file, the pending writes and the writer thread; see the module docstring."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(SCHEMA)
        self._inbox: queue_mod.SimpleQueue[Any] = queue_mod.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[Pending] = []
        self._flush_scheduled = False
        self._thread_busy = False  # the thread holds a batch: nothing may be committed before it

    def load(self, now: float) -> Snapshot:
        """Read all state (call before :meth:`start`)."""
        snap = Snapshot()
        snap.queues = [queue_from_record(r) for (r,) in self._conn.execute("SELECT record FROM queues")]
        snap.tasks = [task_from_record(r) for (r,) in self._conn.execute("SELECT record FROM tasks")]
        snap.tombstones = dict(self._conn.execute("SELECT name, expires FROM tombstones WHERE expires > ?", (now,)))
        snap.meta = dict(self._conn.execute("SELECT key, value FROM meta"))
        snap.cmek = dict(self._conn.execute("SELECT location, kms_key FROM cmek_configs"))
        return snap

    def write_now(self, ops: Sequence[Op]) -> None:
        """Commit synchronously (start-up only, before :meth:`start`)."""
        self._commit(ops)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the writer thread; writes are then batched on ``loop`` (call from its thread)."""
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="tasks-db-writer", daemon=True)
        self._thread.start()

    async def write(self, ops: Sequence[Op]) -> None:
        """Queue ``ops`` and wait until they are committed (call on the loop)."""
        assert self._loop is not None
        future = self._loop.create_future()
        self._add((ops, future))
        await future

    def commit_now(self, ops: Sequence[Op]) -> bool:
        """Commit ``ops`` now, on the loop, after whatever is pending; False (nothing done) while
        the writer thread holds a batch, which must be committed first: then use :meth:`write`.

        Raises the commit's error (the batch, earlier pending changes included, is rolled back).
        """
        if self._thread_busy:
            return False
        batch, self._pending = [*self._pending, (ops, None)], []
        error = self._commit_batch(batch)
        self._settle(batch, error)
        if error is not None:
            raise error
        return True

    def write_later(self, ops: Sequence[Op]) -> None:
        """Queue ``ops`` for the next commit without waiting (ordered after earlier writes; call on the loop)."""
        self._add((ops, None))

    def close(self) -> None:
        """Commit everything queued, stop the writer thread and close the file."""
        if self._thread is not None:
            self._inbox.put(_STOP)
            self._thread.join(timeout=10)
            self._thread = None
        self._thread_busy = False
        if self._pending:
            batch, self._pending = self._pending, []
            self._settle(batch, self._commit_batch(batch))
        self._conn.close()

    def _add(self, item: Pending) -> None:
        self._pending.append(item)
        if not self._flush_scheduled:
            assert self._loop is not None
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Commit what is pending: on the loop if someone waits for it, else on the writer thread."""
        self._flush_scheduled = False
        if self._thread_busy or not self._pending:
            return  # the thread's completion flushes again
        batch, self._pending = self._pending, []
        if any(future is not None for _, future in batch):
            self._settle(batch, self._commit_batch(batch))
        else:
            self._thread_busy = True
            self._inbox.put(batch)

    def _thread_done(self) -> None:
        """The writer thread committed its batch: the loop may commit again."""
        self._thread_busy = False
        if self._pending and not self._flush_scheduled:
            self._flush()

    def _run(self) -> None:
        while True:
            batch = self._inbox.get()
            if batch is _STOP:
                return
            self._commit_batch(batch)
            try:
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._thread_done)
            except RuntimeError:  # loop closed during shutdown
                return

    def _commit_batch(self, batch: list[Pending]) -> BaseException | None:
        try:
            self._commit([op for ops, _ in batch for op in ops])
            return None
        except Exception as exc:  # noqa: BLE001 - reported to every waiting caller
            log.error("sqlite commit failed: %s", exc)
            return exc

    def _commit(self, ops: Sequence[Op]) -> None:
        conn = self._conn
        if len(ops) == 1:  # one statement is a transaction of its own (the connection autocommits)
            conn.execute(*ops[0])
            return
        conn.execute("BEGIN")
        try:
            for sql, params in ops:
                conn.execute(sql, params)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _settle(batch: list[Pending], error: BaseException | None) -> None:
        """Resolve the futures of a batch committed on the loop (``error``: it was rolled back)."""
        for _, future in batch:
            if future is None or future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
