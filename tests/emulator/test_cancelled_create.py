"""Issue 27, at the service layer: a change whose caller is cancelled at any await point
either happened everywhere (memory, ListTasks, the SQLite file, the dispatcher) or nowhere.

The emulator's pieces run in this process on one event loop: the real SQLite store (behind
:class:`SteppedStore`, which numbers the await points of a write and can cancel the caller at
any of them), the real dispatcher, and a real HTTP target on a loopback socket.  Each case
cancels at point k = -1 (before the call starts), 0, 1, ... until a call runs through
uncancelled, so every await point is covered however many there are.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from ordertasks.infra.emulator import oidc, store as db
from ordertasks.infra.emulator.dispatcher import Dispatcher
from ordertasks.infra.emulator.errors import RpcError
from ordertasks.infra.emulator.model import QueueState
from ordertasks.infra.emulator.service import TasksService
from tests.emulator.conftest import PARENT
from tests.emulator.receiver import Receiver

QUEUE = f"{PARENT}/queues/issue-27"
MAX_POINTS = 20  # bound on the await points walked; a write has five today
DEADLINE = 10.0
# A statement the real writer thread fails on, so a "failed write" is SQLite's own failure
# (rolled back, reported through the write's future), not an exception raised by the test.
FAILING_OP: db.Op = ("INSERT INTO no_such_table VALUES (1)", ())


def _ignore(point: int) -> None:
    """No hook: let the write run."""


class SteppedStore(db.Store):
    """The real store; ``write`` passes numbered await points (two yields, the wait for the
    commit, two yields), calling ``at_point(n)`` at each, and fails its commit while ``fail``.

    ``commit_now`` (the store committing a change at once, with no await point) is refused
    unless ``immediate``, so the walks cover ``write``'s points: the path a change takes while
    the writer thread holds a batch."""

    def __init__(self, path: Path, immediate: bool = False) -> None:
        super().__init__(path)
        self.at_point: Callable[[int], object] = _ignore
        self.points = 0
        self.fail = False
        self.immediate = immediate

    def commit_now(self, ops: Sequence[db.Op]) -> bool:
        """The real immediate commit when ``immediate``; otherwise "not now" (use ``write``)."""
        if not self.immediate:
            return False
        return super().commit_now([*ops, FAILING_OP] if self.fail else ops)

    async def write(self, ops: Sequence[db.Op]) -> None:
        """Write ``ops`` through the real writer thread, passing the numbered await points."""
        for _ in range(2):
            await self._point(asyncio.sleep(0))
        await self._point(super().write([*ops, FAILING_OP] if self.fail else ops))
        for _ in range(2):
            await self._point(asyncio.sleep(0))

    async def _point(self, step: Awaitable[None]) -> None:
        self.at_point(self.points)
        self.points += 1
        await step


@dataclass
class Rig:
    """One in-process emulator: service, stepped store, dispatcher."""

    service: TasksService
    store: SteppedStore
    db: Path


@asynccontextmanager
async def running(path: Path, minter: oidc.TokenMinter, immediate: bool = False) -> AsyncIterator[Rig]:
    """Start an in-process emulator on the SQLite file ``path`` (restoring what it holds)."""
    store = SteppedStore(path, immediate)
    service = TasksService(store, time.time)
    service.restore(store.load(time.time()))
    store.start(asyncio.get_running_loop())
    session = aiohttp.ClientSession()
    dispatcher = Dispatcher(service, minter, session, time.time, log_line=lambda _: None)
    service.start_dispatching(dispatcher)
    try:
        yield Rig(service, store, path)
    finally:
        await dispatcher.stop()
        await session.close()
        store.close()


async def cancelled_at(rig: Rig, point: int, action: Callable[[], Awaitable[object]]) -> str:
    """Run ``action()`` as its own task and cancel it when the store reaches await ``point``
    (-1: before it starts).  Returns ``"done"``, ``"cancelled"`` or ``"failed"`` (RpcError)."""
    call = asyncio.ensure_future(action())
    rig.store.points = 0
    rig.store.at_point = lambda n: call.cancel() if n == point else None
    if point == -1:
        call.cancel()
    try:
        await call
        return "done"
    except asyncio.CancelledError:
        return "cancelled"
    except RpcError:
        return "failed"
    finally:
        rig.store.at_point = _ignore


async def eventually(condition: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
    """Poll ``condition`` (letting the loop run) until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def stored_rows(path: Path, table: str) -> dict[str, str]:
    """``name -> record`` (or expiry) of a table, read from the file by a connection of our own."""
    with closing(sqlite3.connect(path)) as conn:
        column = "expires" if table == "tombstones" else "record"
        return dict(conn.execute(f"SELECT name, {column} FROM {table}"))  # noqa: S608 - fixed table names


def delivered(receiver: Receiver, task_id: str) -> int:
    """How many attempts of ``task_id`` the target has received."""
    return sum(1 for r in receiver.received() if r.header("X-CloudTasks-TaskName") == task_id)


def task_body(receiver: Receiver, task_id: str) -> dict[str, object]:
    """A CreateTask body for an HTTP task to the receiver."""
    return {"task": {"name": f"{QUEUE}/tasks/{task_id}", "httpRequest": {"url": receiver.url("/issue-27")}}}


async def paused_queue(rig: Rig) -> None:
    """The queue under test, paused: a stored task stays stored until the test resumes it."""
    await rig.service.create_queue(PARENT, {"name": QUEUE})
    await rig.service.set_state(QUEUE, QueueState.PAUSED)


def task_state(rig: Rig, name: str) -> tuple[bool, bool, bool]:
    """Is the task in memory, in ListTasks, in the SQLite file?"""
    in_memory = name in rig.service.tasks.get(QUEUE, {})
    listed = name in {t.name for t in rig.service.list_tasks(QUEUE, 0, "")[0]}
    return in_memory, listed, name in stored_rows(rig.db, "tasks")


async def dispatched_then_gone(rig: Rig, receiver: Receiver, task_id: str) -> None:
    """Resume the queue; the task must reach the target and then leave the queue."""
    await rig.service.set_state(QUEUE, QueueState.RUNNING)
    await eventually(lambda: delivered(receiver, task_id), f"{task_id} delivered")
    await eventually(lambda: f"{QUEUE}/tasks/{task_id}" not in rig.service.tasks[QUEUE], f"{task_id} completed")


async def check_create(path: Path, minter: oidc.TokenMinter, receiver: Receiver, point: int, fail: bool,
                       immediate: bool = False) -> str:
    """One create cancelled at ``point`` (its commit failing if ``fail``), then the invariant:
    fully there and dispatched, or nowhere (also after a restart) and creatable again."""
    task_id = f"k{point + 1}-{'fail' if fail else 'ok'}{'-now' if immediate else ''}"
    name = f"{QUEUE}/tasks/{task_id}"
    async with running(path, minter, immediate) as rig:
        await paused_queue(rig)
        rig.store.fail = fail
        outcome = await cancelled_at(rig, point, lambda: rig.service.create_task(QUEUE, task_body(receiver, task_id)))
        rig.store.fail = False
        state = task_state(rig, name)
        assert state in ((True, True, True), (False, False, False)), f"{outcome} at {point}: memory/list/disk {state}"
        if state[0]:
            assert not fail, "a create whose commit failed left the task behind"
            await dispatched_then_gone(rig, receiver, task_id)
            return outcome
    async with running(path, minter) as rig:
        assert task_state(rig, name) == (False, False, False), "the task came back after a restart"
        await rig.service.create_task(QUEUE, task_body(receiver, task_id))
        await dispatched_then_gone(rig, receiver, task_id)
    return outcome


@pytest.fixture(scope="module")
def minter() -> oidc.TokenMinter:
    """One signing key for every in-process emulator of this module (making one takes a while)."""
    return oidc.TokenMinter(oidc.new_key_material(time.time()), "https://accounts.google.com", time.time)


def walk_points(run: Callable[[int], str], last: str) -> list[str]:
    """``run(k)`` for k = -1, 0, 1, ... until it returns ``last`` (a call no cancel reached)."""
    outcomes = []
    for point in range(-1, MAX_POINTS):
        outcomes.append(run(point))
        if outcomes[-1] == last:
            return outcomes
    raise AssertionError(f"a call was still cancelled at await point {MAX_POINTS}: {outcomes}")


# -- CreateTask ---------------------------------------------------------------------------

def test_create_cancelled_at_every_await_point_exists_fully_or_not_at_all(
        tmp_path: Path, minter: oidc.TokenMinter, receiver: Receiver) -> None:
    outcomes = walk_points(lambda k: asyncio.run(check_create(tmp_path / f"k{k}.db", minter, receiver, k, False)),
                           last="done")

    assert outcomes.count("cancelled") >= 5, outcomes  # before the start, and at every point of the write


def test_create_whose_commit_fails_leaves_nothing_behind_even_when_cancelled(
        tmp_path: Path, minter: oidc.TokenMinter, receiver: Receiver) -> None:
    outcomes = walk_points(lambda k: asyncio.run(check_create(tmp_path / f"f{k}.db", minter, receiver, k, True)),
                           last="failed")

    assert outcomes[0] == "cancelled" and outcomes[-1] == "failed", outcomes


@pytest.mark.parametrize("fail", [False, True], ids=["commits", "commit fails"])
def test_a_create_committed_at_once_has_no_await_point_and_exists_fully_or_not_at_all(
        tmp_path: Path, minter: oidc.TokenMinter, receiver: Receiver, fail: bool) -> None:
    """The path a sequential create takes (the writer thread idle): the store commits at once,
    so a cancel lands before the call starts or not at all; a failed commit leaves nothing."""
    last = "failed" if fail else "done"
    outcomes = walk_points(lambda k: asyncio.run(check_create(tmp_path / f"n{k}.db", minter, receiver, k, fail,
                                                              immediate=True)), last=last)

    assert outcomes == ["cancelled", last], outcomes


def test_create_cancelled_again_and_again_still_settles(
        tmp_path: Path, minter: oidc.TokenMinter, receiver: Receiver) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "again.db", minter) as rig:
            await paused_queue(rig)
            call = asyncio.ensure_future(rig.service.create_task(QUEUE, task_body(receiver, "again")))
            rig.store.at_point = lambda _: call.cancel()  # a caller cancelled at every point, repeatedly

            with pytest.raises(asyncio.CancelledError):
                await call

            assert task_state(rig, f"{QUEUE}/tasks/again") == (True, True, True)
            await dispatched_then_gone(rig, receiver, "again")
    asyncio.run(scenario())
    assert delivered(receiver, "again") == 1


# -- the other changes with the same shape: in memory first, then the commit ---------------

def test_resume_cancelled_at_every_await_point_reaches_the_dispatcher(
        tmp_path: Path, minter: oidc.TokenMinter, receiver: Receiver) -> None:
    async def resume_at(point: int) -> str:
        task_id = f"resume{point + 1}"
        async with running(tmp_path / f"r{point}.db", minter) as rig:
            await paused_queue(rig)
            await rig.service.create_task(QUEUE, task_body(receiver, task_id))
            outcome = await cancelled_at(rig, point, lambda: rig.service.set_state(QUEUE, QueueState.RUNNING))
            on_disk = db.queue_from_record(stored_rows(rig.db, "queues")[QUEUE]).state
            assert rig.service.queue(QUEUE).state == on_disk
            if on_disk == QueueState.RUNNING:  # shown running, so it must dispatch
                await eventually(lambda: delivered(receiver, task_id), f"{task_id} delivered after the resume")
            return outcome

    walk_points(lambda k: asyncio.run(resume_at(k)), last="done")


def test_create_queue_cancelled_at_every_await_point_is_a_working_queue_or_none(
        tmp_path: Path, minter: oidc.TokenMinter, receiver: Receiver) -> None:
    async def create_queue_at(point: int) -> str:
        task_id = f"queue{point + 1}"
        async with running(tmp_path / f"q{point}.db", minter) as rig:
            outcome = await cancelled_at(rig, point, lambda: rig.service.create_queue(PARENT, {"name": QUEUE}))
            exists = QUEUE in rig.service.queues
            assert exists == (QUEUE in stored_rows(rig.db, "queues"))
            if not exists:
                await rig.service.create_queue(PARENT, {"name": QUEUE})
            await rig.service.create_task(QUEUE, task_body(receiver, task_id))
            await eventually(lambda: delivered(receiver, task_id), f"{task_id} delivered in the new queue")
            return outcome

    walk_points(lambda k: asyncio.run(create_queue_at(k)), last="done")


def test_delete_task_cancelled_at_every_await_point_is_gone_everywhere_or_nowhere(
        tmp_path: Path, minter: oidc.TokenMinter, receiver: Receiver) -> None:
    async def delete_at(point: int) -> str:
        name = f"{QUEUE}/tasks/delete{point + 1}"
        async with running(tmp_path / f"d{point}.db", minter) as rig:
            await paused_queue(rig)
            await rig.service.create_task(QUEUE, {"task": {"name": name, "httpRequest": {"url": receiver.url()}}})
            outcome = await cancelled_at(rig, point, lambda: rig.service.delete_task(name))
            state = task_state(rig, name)
            assert state in ((True, True, True), (False, False, False)), f"{outcome} at {point}: {state}"
            assert (name in rig.service.tombstones) == (name in stored_rows(rig.db, "tombstones")) == (not state[0])
            return outcome

    walk_points(lambda k: asyncio.run(delete_at(k)), last="done")
