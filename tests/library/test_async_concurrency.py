"""Fifty ``AsyncOrderTasks.schedule`` calls at once on one event loop, against an emulator that
answers every call late: each task is created once, every ``CreateTask`` runs on the loop's
own thread (no thread pool), they overlap, and a heartbeat coroutine keeps ticking throughout.

A ``CreateTask`` made on the loop thread and waited for there (a synchronous client) would
stop the heartbeat for the emulator's whole latency; the bound below is half of it.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ordertasks import AsyncOrderTasks
from ordertasks.handlers.wiring import build_stores
from ordertasks.producer.async_library import async_tasks_client
from ordertasks.producer.enqueue import AsyncEnqueuer, queue_path
from ordertasks.producer.wiring import tasks_client
from tests.effects.orders import eur_order
from tests.producer.conftest import Emulator, make_settings, pause_all

ORDERS = 50
LATENCY_MS = 1000           # the emulator's delay before answering each call
TICK = 0.005                # the heartbeat's interval, seconds


class WatchedClient:
    """A real ``CloudTasksAsyncClient`` that notes, for each ``CreateTask``, the thread it was
    awaited on and how many were in flight at once."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.threads: set[int] = set()
        self.in_flight = 0
        self.peak = 0

    async def create_task(self, **request: Any) -> Any:
        """``CreateTask``, watched."""
        self.threads.add(threading.get_ident())
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await self.client.create_task(**request)
        finally:
            self.in_flight -= 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


class Heartbeat:
    """Ticks every ``TICK`` seconds on the loop; ``longest_gap`` is how long the loop was away."""

    def __init__(self) -> None:
        self.ticks: list[float] = []

    async def beat(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set."""
        while not stop.is_set():
            self.ticks.append(time.monotonic())
            await asyncio.sleep(TICK)

    @property
    def longest_gap(self) -> float:
        """The longest time between two ticks, seconds."""
        return max(b - a for a, b in zip(self.ticks, self.ticks[1:]))


@pytest.fixture
def slow_emulator(tmp_path: Path) -> Iterator[Emulator]:
    running = Emulator(tmp_path, latency_ms=LATENCY_MS).start()
    try:
        yield running
    finally:
        running.stop()


def test_fifty_concurrent_schedules_share_one_loop_without_blocking_it(tmp_path: Path, slow_emulator: Emulator) -> None:
    settings = make_settings(tmp_path, slow_emulator.host, tasks={"enqueue_timeout_seconds": 30.0})
    catalog = settings.catalog()
    pause_all(tasks_client(settings), catalog)
    watched: list[WatchedClient] = []

    def connect() -> WatchedClient:
        watched.append(WatchedClient(async_tasks_client(settings)))
        return watched[0]
    run_id = uuid.uuid4().hex[:6]
    orders = [{"order_id": f"ord_many_{run_id}_{n}", **eur_order().model_dump(mode="json")} for n in range(ORDERS)]

    async def scenario() -> tuple[list[Any], Heartbeat, int, float]:
        heartbeat, stop = Heartbeat(), asyncio.Event()
        beating = asyncio.create_task(heartbeat.beat(stop))
        async with AsyncOrderTasks(settings, build_stores(settings), AsyncEnqueuer(None, settings, connect=connect),
                                   owned=True) as tasks:
            started = time.monotonic()
            results = await asyncio.gather(*(tasks.schedule(o) for o in orders))
            elapsed = time.monotonic() - started
        stop.set()
        await beating
        return results, heartbeat, threading.get_ident(), elapsed

    results, heartbeat, loop_thread, elapsed = asyncio.run(scenario())
    expected = {task_name for result in results for task_name in (r.name for r in result)}
    assert len(expected) == ORDERS * len(catalog.kinds)
    assert {r.state for result in results for r in result} == {"created"}
    held = [t.name for q in catalog.queues
            for t in tasks_client(settings).list_tasks(parent=queue_path(catalog.project, catalog.region, q))
            if f"_{run_id}_" in t.name]
    assert sorted(held) == sorted(expected)                    # each one created, and once
    client = watched[0]
    assert client.threads == {loop_thread}                     # no thread pool for Cloud Tasks calls
    assert client.peak > len(catalog.kinds)                    # orders' creates overlapped, not only one order's
    assert elapsed < ORDERS * len(catalog.kinds) * LATENCY_MS / 1000 / 10
    assert heartbeat.longest_gap < LATENCY_MS / 1000 / 2, heartbeat.longest_gap
    assert not [t.name for t in threading.enumerate() if t.name.startswith("enqueue")]
