"""``ordertasks emulator --loop``: uvloop when installed (the default, ``auto``), asyncio's own
loop on request, and a clear refusal when uvloop is asked for by name and missing.

The rest of the emulator suite runs on the default; the asyncio case here keeps the other
loop working end to end (gRPC and REST on the one port).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from ordertasks.infra.emulator.server import event_loop_runner, main
from tests.emulator.conftest import PARENT, start_emulator


def test_auto_picks_uvloop_when_it_is_installed_and_asyncio_when_not(monkeypatch: pytest.MonkeyPatch) -> None:
    uvloop = pytest.importorskip("uvloop")
    assert event_loop_runner("auto") is uvloop.run
    assert event_loop_runner("asyncio") is asyncio.run
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    assert event_loop_runner("auto") is asyncio.run
    with pytest.raises(ImportError):
        event_loop_runner("uvloop")


def test_asking_for_a_missing_uvloop_stops_at_start_naming_it(monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)

    assert main(["--loop", "uvloop"]) == 2
    assert "--loop uvloop: uvloop is not installed" in capsys.readouterr().err


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_emulator_serves_both_transports_on_either_loop(tmp_path: Path, loop: str) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    emulator = start_emulator(tmp_path, extra=["--loop", loop])
    try:
        for transport in ("grpc", "rest"):
            client = emulator.client(transport)
            queue = client.create_queue(parent=PARENT, queue={"name": f"{PARENT}/queues/loop-{loop}-{transport}"})
            client.pause_queue(name=queue.name)
            task = client.create_task(parent=queue.name, task={"http_request": {"url": "http://127.0.0.1:9/"}})
            assert [t.name for t in client.list_tasks(parent=queue.name)] == [task.name]
    finally:
        emulator.process.stop()
