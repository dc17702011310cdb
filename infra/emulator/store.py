"""Durable state in SQLite (WAL): queues, tasks, name tombstones, CMEK configs and the signing key.

The emulator serves from memory and writes through to SQLite.  All writes go to one writer
thread that commits whatever has queued up in a single transaction (group commit): a burst
of creates costs one fsync-free WAL commit, and the event loop never blocks on SQLite.
``write()`` resolves once the change is committed (used before answering a create, so an
acknowledged task survives ``kill -9``); ``write_later()`` queues a change without waiting
(dispatch outcomes: losing one in a crash only means a task is delivered again).
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
SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (name TEXT PRIMARY KEY, queue TEXT NOT NULL, record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_by_queue ON tasks (queue);
CREATE TABLE IF NOT EXISTS tombstones (name TEXT PRIMARY KEY, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cmek_configs (location TEXT PRIMARY KEY, kms_key TEXT NOT NULL);
"""
_STOP = object()
MAX_BATCH = 10_000


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
    """The SQLite file plus its writer thread; see the module docstring."""

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
        """Commit synchronously (start-up only, before the writer thread runs)."""
        self._commit(ops)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the writer thread; completions are delivered on ``loop``."""
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="tasks-db-writer", daemon=True)
        self._thread.start()

    async def write(self, ops: Sequence[Op]) -> None:
        """Queue ``ops`` and wait until they are committed."""
        assert self._loop is not None
        future = self._loop.create_future()
        self._inbox.put((ops, future))
        await future

    def write_later(self, ops: Sequence[Op]) -> None:
        """Queue ``ops`` for the next commit without waiting (ordered after earlier writes)."""
        self._inbox.put((ops, None))

    def close(self) -> None:
        """Commit everything queued, stop the writer thread and close the file."""
        if self._thread is not None:
            self._inbox.put(_STOP)
            self._thread.join(timeout=10)
            self._thread = None
        self._conn.close()

    def _run(self) -> None:
        while True:
            batch, stop = self._next_batch()
            if batch:
                error = self._commit_batch(batch)
                self._settle([fut for _, fut in batch if fut is not None], error)
            if stop:
                return

    def _next_batch(self) -> tuple[list[Any], bool]:
        first = self._inbox.get()
        if first is _STOP:
            return [], True
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                item = self._inbox.get_nowait()
            except queue_mod.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _commit_batch(self, batch: list[Any]) -> BaseException | None:
        try:
            self._commit([op for ops, _ in batch for op in ops])
            return None
        except Exception as exc:  # noqa: BLE001 - reported to every waiting caller
            log.error("sqlite commit failed: %s", exc)
            return exc

    def _commit(self, ops: Sequence[Op]) -> None:
        conn = self._conn
        conn.execute("BEGIN")
        try:
            for sql, params in ops:
                conn.execute(sql, params)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _settle(self, futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
        if not futures or self._loop is None or self._loop.is_closed():
            return

        def resolve() -> None:
            for fut in futures:
                if fut.done():
                    continue
                if error is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(error)
        try:
            self._loop.call_soon_threadsafe(resolve)
        except RuntimeError:  # loop closed during shutdown
            pass
