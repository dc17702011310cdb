"""The emulator process: crash safety, clean stop, catalog queues, command-line flags."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from google.api_core import exceptions

from tests.emulator.conftest import PARENT, REPO_ROOT, start_emulator
from tests.emulator.receiver import Receiver, Reply
from tests.support.servers import wait_until


def create_queue(client, queue_id: str, **rate) -> str:  # type: ignore[no-untyped-def]
    """A queue with the given rate limits; returns its name."""
    name = f"{PARENT}/queues/{queue_id}"
    client.create_queue(parent=PARENT, queue={"name": name, "rate_limits": rate,
                                              "retry_config": {"min_backoff": {"nanos": 50_000_000}}})
    return name


def delivered_names(receiver: Receiver) -> set[str]:
    """Task ids the receiver has seen."""
    return {r.headers["X-CloudTasks-TaskName"] for r in receiver.received()}


def test_kill_9_mid_dispatch_loses_no_task(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script("/crash", [Reply(200, delay=0.05)])
    emu = start_emulator(tmp_path)
    try:
        client = emu.client()
        queue = create_queue(client, "crash", max_dispatches_per_second=100, max_concurrent_dispatches=5)
        expected = set()
        for i in range(150):
            expected.add(client.create_task(parent=queue, task={"name": f"{queue}/tasks/c{i}",
                                                                 "http_request": {"url": receiver.url("/crash")}}).name)
        wait_until(lambda: len(receiver.received()) >= 30, timeout=10, what="dispatch under way")
        # Tasks acknowledged a moment before the crash must survive it too.
        for i in range(20):
            expected.add(client.create_task(parent=queue, task={"name": f"{queue}/tasks/late{i}",
                                                                 "http_request": {"url": receiver.url("/crash")}}).name)
        emu.process.kill9()
        assert len(delivered_names(receiver)) < len(expected), "crash came too late to test anything"

        emu = start_emulator(tmp_path, db=emu.db)
        client = emu.client()
        ids = {name.rsplit("/", 1)[1] for name in expected}
        wait_until(lambda: delivered_names(receiver) >= ids, timeout=30, what="every task delivered after restart")
        assert delivered_names(receiver) == ids
        wait_until(lambda: list(client.list_tasks(parent=queue)) == [], timeout=10, what="queue drained")
    finally:
        emu.process.stop()


def test_sigterm_stops_cleanly_and_state_survives(tmp_path: Path) -> None:
    emu = start_emulator(tmp_path)
    client = emu.client()
    queue = create_queue(client, "survivor")
    client.pause_queue(name=queue)
    name = client.create_task(parent=queue, task={"http_request": {"url": "http://127.0.0.1:9/"}}).name

    emu.process.stop()

    assert emu.process.proc is not None and emu.process.proc.returncode == 0
    emu = start_emulator(tmp_path, db=emu.db)
    try:
        client = emu.client()
        assert client.get_task(name=name).name == name
        assert client.get_queue(name=queue).state.name == "PAUSED"
    finally:
        emu.process.stop()


def test_queues_flag_creates_catalog_queues(tmp_path: Path) -> None:
    from ordertasks.infra.config import load_catalog

    catalog = load_catalog(REPO_ROOT / "infra" / "tasks.toml")
    emu = start_emulator(tmp_path, extra=["--queues", str(REPO_ROOT / "infra" / "tasks.toml"),
                                          "--project", "p1", "--location", "europe-west3"])
    try:
        client = emu.client()
        queues = {q.name.rsplit("/", 1)[1]: q for q in client.list_queues(parent="projects/p1/locations/europe-west3")}
        assert set(queues) == set(catalog.queues)
        for queue_id, config in catalog.queues.items():
            queue = queues[queue_id]
            assert queue.rate_limits.max_dispatches_per_second == config.max_dispatches_per_second
            assert queue.rate_limits.max_burst_size == config.max_burst_size
            assert queue.rate_limits.max_concurrent_dispatches == config.max_concurrent_dispatches
            assert queue.retry_config.max_attempts == config.max_attempts
            assert queue.retry_config.min_backoff.total_seconds() == config.min_backoff_seconds
            assert queue.retry_config.max_backoff.total_seconds() == config.max_backoff_seconds
            assert queue.retry_config.max_doublings == config.max_doublings
    finally:
        emu.process.stop()


def test_dedup_window_and_latency_flags(tmp_path: Path) -> None:
    emu = start_emulator(tmp_path, extra=["--dedup-window", "0.5", "--inject-latency-ms", "100"])
    try:
        client = emu.client()
        started = time.monotonic()
        queue = create_queue(client, "window")
        assert time.monotonic() - started >= 0.1
        task = {"name": f"{queue}/tasks/reused", "http_request": {"url": "http://127.0.0.1:9/"},
                "schedule_time": {"seconds": int(time.time()) + 3600}}
        client.create_task(parent=queue, task=task)
        client.delete_task(name=task["name"])
        with pytest.raises(exceptions.Conflict):
            client.create_task(parent=queue, task=task)

        def created_again() -> bool:
            try:
                return bool(client.create_task(parent=queue, task=task))
            except exceptions.Conflict:
                return False
        wait_until(created_again, timeout=5, what="name free again after the dedup window")
    finally:
        emu.process.stop()
