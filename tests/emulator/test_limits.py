"""The emulator's caps as flags: ``--max-queues`` and ``--max-tasks`` are validated, a catalog
larger than the queue cap stops the start with a message naming the flag, and a slot freed
by a finished or deleted task can be used again. (The attacks themselves are in
``tests/security/test_emulator_limits.py``.)"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from google.api_core import exceptions

from ordertasks.infra.emulator.server import parse_args
from ordertasks.infra.emulator.service import DEFAULT_MAX_QUEUES, DEFAULT_MAX_TASKS
from tests.emulator.conftest import PARENT, REPO_ROOT, start_emulator
from tests.support.servers import free_port


def test_the_defaults_are_generous() -> None:
    args = parse_args([])
    assert (args.max_queues, args.max_tasks) == (DEFAULT_MAX_QUEUES, DEFAULT_MAX_TASKS) == (1000, 1_000_000)
    assert parse_args(["--max-tasks", "5_000_000"]).max_tasks == 5_000_000


@pytest.mark.parametrize("value", ["0", "-3", "many", "1.5"])
def test_a_cap_must_be_a_whole_number_above_zero(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--max-queues", value])
    assert "--max-queues" in capsys.readouterr().err


def test_a_catalog_over_the_queue_cap_stops_the_start(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "ordertasks.infra.emulator", "--port", str(free_port()),
                           "--db", str(tmp_path / "tasks.db"), "--queues", "--max-queues", "2"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "the most --max-queues 2 allows" in done.stderr and "Traceback" not in done.stderr


def test_a_freed_slot_takes_a_task_again(tmp_path: Path) -> None:
    emu = start_emulator(tmp_path, extra=["--max-tasks", "1", "--max-queues", "1"])
    try:
        client = emu.client("grpc")
        queue = client.create_queue(parent=PARENT, queue={"name": f"{PARENT}/queues/q-{uuid.uuid4().hex[:8]}"}).name
        client.pause_queue(name=queue)
        first = client.create_task(parent=queue, task={"http_request": {"url": "http://127.0.0.1:9/"}})
        with pytest.raises(exceptions.ResourceExhausted):
            client.create_task(parent=queue, task={"http_request": {"url": "http://127.0.0.1:9/"}})
        with pytest.raises(exceptions.ResourceExhausted, match="--max-queues"):
            client.create_queue(parent=PARENT, queue={"name": f"{PARENT}/queues/second"})
        client.delete_task(name=first.name)
        client.create_task(parent=queue, task={"http_request": {"url": "http://127.0.0.1:9/"}})
    finally:
        emu.process.stop()
