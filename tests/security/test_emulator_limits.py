"""Item F10: the emulator bounds what a client or a target can make it hold.

A 5 MB REST body used to be answered 500 (not 413), nothing capped the number of queues or
tasks, and a target's answer was read whole (RSS 104 → 349 MiB for one big answer). Now a
body over the request limit is 413 on REST and RESOURCE_EXHAUSTED on gRPC, ``--max-queues``
and ``--max-tasks`` refuse more with RESOURCE_EXHAUSTED (429 on REST) naming the flag, and
a target's answer is read only up to a cap. Real emulator processes, the official client
on both transports, a real target on loopback.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from google.api_core import exceptions

from ordertasks.infra.emulator.api import MAX_REQUEST_BYTES
from tests.emulator.conftest import PARENT, Emulator, start_emulator
from tests.support.servers import wait_until

MiB = 1024 * 1024
HUGE_ANSWER = 128 * MiB


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """An emulator with small caps: 3 queues, 2 tasks."""
    emu = start_emulator(tmp_path_factory.mktemp("limits"), extra=["--max-queues", "3", "--max-tasks", "2"])
    try:
        yield emu
    finally:
        emu.process.stop()


@pytest.fixture(scope="module")
def paused_queue(emulator: Emulator) -> str:
    name = f"{PARENT}/queues/limits"
    emulator.client().create_queue(parent=PARENT, queue={"name": name})
    emulator.client().pause_queue(name=name)
    return name


def rest_task_body(body_bytes: int) -> bytes:
    """A create-task request whose base64 ``body`` field is ``body_bytes`` long."""
    return (b'{"task": {"httpRequest": {"url": "http://127.0.0.1:9/", "body": "' + b"A" * body_bytes + b'"}}}')


def test_a_5_mb_rest_body_is_413(emulator: Emulator, paused_queue: str) -> None:
    """Attack: a 5 MB CreateTask over REST (it used to be a 500 INTERNAL after reading it all)."""
    answer = requests.post(f"{emulator.endpoint}/v2/{paused_queue}/tasks", data=rest_task_body(5 * MiB), timeout=30,
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text[:300]
    error = answer.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED" and str(MAX_REQUEST_BYTES) in error["message"]
    assert "1 MiB" in error["message"]


def test_a_chunked_body_without_end_is_413(emulator: Emulator, paused_queue: str) -> None:
    """Attack: the same body sent chunked (no Content-Length), cut off at the limit."""
    def chunks() -> Iterator[bytes]:
        yield b'{"task": {"httpRequest": {"url": "http://127.0.0.1:9/", "body": "'
        for _ in range(8):
            yield b"A" * MiB
    answer = requests.post(f"{emulator.endpoint}/v2/{paused_queue}/tasks", data=chunks(), timeout=30,
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_a_5_mb_grpc_message_is_resource_exhausted(emulator: Emulator, paused_queue: str) -> None:
    """Attack: a 5 MB CreateTask over gRPC: over the max receive message size, as Google refuses it."""
    task = {"http_request": {"url": "http://127.0.0.1:9/", "body": b"x" * (5 * MiB)}}
    with pytest.raises(exceptions.ResourceExhausted):
        emulator.client("grpc").create_task(parent=paused_queue, task=task)


def test_a_task_over_1_mib_is_still_cloud_tasks_own_400(emulator: Emulator, paused_queue: str) -> None:
    """Attack: none; a task just over 1 MiB is under the request cap and gets Cloud Tasks' INVALID_ARGUMENT."""
    answer = requests.post(f"{emulator.endpoint}/v2/{paused_queue}/tasks", data=rest_task_body(2 * MiB), timeout=30,
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and "1 MiB" in answer.json()["error"]["message"]


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_tasks_over_the_cap_are_resource_exhausted(emulator: Emulator, paused_queue: str, transport: str) -> None:
    """Attack: a runaway producer creates tasks without end; past --max-tasks each is refused, naming the flag."""
    client = emulator.client(transport)
    requests.post(f"{emulator.endpoint}/_emulator/reset", timeout=10).raise_for_status()
    for _ in range(2):
        client.create_task(parent=paused_queue, task={"http_request": {"url": "http://127.0.0.1:9/"}})
    with pytest.raises(exceptions.TooManyRequests, match="--max-tasks") as raised:
        client.create_task(parent=paused_queue, task={"http_request": {"url": "http://127.0.0.1:9/"}})
    assert transport == "rest" or isinstance(raised.value, exceptions.ResourceExhausted)
    assert len(list(client.list_tasks(parent=paused_queue))) == 2


def test_queues_over_the_cap_are_429_naming_the_flag(emulator: Emulator, paused_queue: str) -> None:
    """Attack: queues created without end; past --max-queues each is refused with RESOURCE_EXHAUSTED."""
    created = [requests.post(f"{emulator.endpoint}/v2/{PARENT}/queues", json={"name": f"{PARENT}/queues/cap-{i}"},
                             timeout=10) for i in range(3)]
    assert [r.status_code for r in created] == [200, 200, 429]
    error = created[-1].json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED" and "--max-queues" in error["message"]


class HugeAnswer:
    """A target that answers 200 with a 128 MiB body, written 1 MiB at a time, counting what it got out."""

    def __init__(self) -> None:
        self.sent = 0
        self.finished = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", str(HUGE_ANSWER))
                self.end_headers()
                try:
                    while target.sent < HUGE_ANSWER:
                        self.wfile.write(b"\0" * MiB)
                        target.sent += MiB
                except OSError:
                    pass              # the emulator hung up: what this test wants
                finally:
                    target.finished.set()

            def log_message(self, *args: object) -> None:
                pass
        return Handler


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc: Linux only")


def test_a_128_mib_answer_is_read_only_up_to_the_cap(tmp_path: Path) -> None:
    """Attack: a target answers a dispatch with 128 MiB; the emulator used to read it all into memory."""
    emu = start_emulator(tmp_path)
    target = HugeAnswer()
    try:
        assert emu.process.proc is not None
        before = peak_rss_mib(emu.process.proc.pid)
        queue = f"{PARENT}/queues/huge-answer"
        client = emu.client()
        client.create_queue(parent=PARENT, queue={"name": queue})
        task = client.create_task(parent=queue, task={"http_request": {"url": target.url}})
        assert target.finished.wait(30), "the target never finished writing"
        wait_until(lambda: not list(client.list_tasks(parent=queue)), timeout=30, what="the task to complete")
        grown = peak_rss_mib(emu.process.proc.pid) - before
        assert target.sent < HUGE_ANSWER // 4, f"the emulator read {target.sent} bytes"
        assert grown < 32, f"the emulator's peak RSS grew by {grown:.0f} MiB"
        with pytest.raises(exceptions.NotFound, match="no longer exists"):
            client.get_task(name=task.name)       # completed: a 200 whatever followed it
    finally:
        target.server.shutdown()
        emu.process.stop()
