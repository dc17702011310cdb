"""Issue 27, end to end over real sockets: clients that go away in the middle of CreateTask
(gRPC calls cancelled after sending, REST connections reset mid-request or before reading
the answer) leave no task that ListTasks shows but that is never dispatched, and no name
taken by a task that does not exist."""

from __future__ import annotations

import json
import socket
import struct
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import requests
from google.cloud import tasks_v2

from tests.emulator.conftest import PARENT, Emulator
from tests.emulator.receiver import Receiver
from tests.support.servers import wait_until

CALLS = 50  # creates per transport
BURST = 10  # sent together, then all abandoned: the later ones are still being served
DEADLINE = 20.0
PATH = "/went-away"
# Big bodies make each commit take milliseconds, long enough for a cancel to land in it.
PAYLOAD = b"x" * 400_000


def new_queue(emulator: Emulator) -> str:
    """A fresh running queue with room to dispatch every task at once."""
    name = f"{PARENT}/queues/gone-{uuid.uuid4().hex[:10]}"
    body: dict[str, Any] = {"name": name, "rateLimits": {"maxDispatchesPerSecond": 500, "maxBurstSize": 500,
                                         "maxConcurrentDispatches": 500}}
    resp = requests.post(f"{emulator.endpoint}/v2/{PARENT}/queues", json=body, timeout=10)
    assert resp.status_code == 200, resp.text
    return name


def task_json(queue: str, task_id: str, receiver: Receiver) -> dict[str, Any]:
    """The REST form of a task for the receiver."""
    return {"name": f"{queue}/tasks/{task_id}", "httpRequest": {"url": receiver.url(PATH)}}


def grpc_request(queue: str, task_id: str, receiver: Receiver) -> bytes:
    """A serialized CreateTaskRequest with a big body."""
    request = tasks_v2.CreateTaskRequest(parent=queue, task={
        "name": f"{queue}/tasks/{task_id}", "http_request": {"url": receiver.url(PATH), "body": PAYLOAD}})
    return tasks_v2.CreateTaskRequest.serialize(request)  # type: ignore[no-any-return]


def grpc_burst_cancelled(emulator: Emulator, create: Any, queue: str, burst: list[str], receiver: Receiver) -> None:
    """Send one burst of CreateTask calls and cancel them all while they are being served."""
    calls = [create.future(grpc_request(queue, task_id, receiver), timeout=10) for task_id in burst]
    # Cancel once the server has taken one of the burst's names: the calls behind it are being
    # served then, their commits under way (cancelling at once mostly beats them to the server).
    wait_until(lambda: listed(emulator, queue) & set(burst) or all(c.done() for c in calls), timeout=10,
               what="the burst being served")
    for call in calls:
        call.cancel()
    wait_until(lambda: all(c.done() for c in calls), timeout=10, what="cancelled calls finished")


def grpc_creates_cancelled(emulator: Emulator, queue: str, ids: list[str], receiver: Receiver) -> None:
    """Send CreateTask for each id over gRPC in bursts and cancel every call once sent."""
    with grpc.insecure_channel(f"127.0.0.1:{emulator.port}") as channel:
        create = channel.unary_unary("/google.cloud.tasks.v2.CloudTasks/CreateTask")
        for start in range(0, len(ids), BURST):
            grpc_burst_cancelled(emulator, create, queue, ids[start:start + BURST], receiver)


def raw_request(emulator: Emulator, queue: str, task_id: str, receiver: Receiver) -> bytes:
    """An HTTP/1.1 CreateTask request as bytes."""
    body = json.dumps({"task": task_json(queue, task_id, receiver)}).encode()
    head = (f"POST /v2/{queue}/tasks HTTP/1.1\r\nHost: 127.0.0.1:{emulator.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    return head + body


def rest_creates_abandoned(emulator: Emulator, queue: str, ids: list[str], receiver: Receiver) -> None:
    """Send CreateTask for each id over REST in bursts, cut off at varying places (in the
    headers, in the body, after the whole request), and reset the connections unread."""
    for start in range(0, len(ids), BURST):
        sockets = []
        for n, task_id in enumerate(ids[start:start + BURST]):
            data = raw_request(emulator, queue, task_id, receiver)
            cut = (len(data) // 4, len(data) - 10, len(data))[n % 3]
            sock = socket.create_connection(("127.0.0.1", emulator.port), timeout=5)
            sock.sendall(data[:cut])
            sockets.append(sock)
        for sock in sockets:
            # Linger 0: close sends RST, as a killed client's kernel does; nothing is read.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()


def listed(emulator: Emulator, queue: str) -> set[str]:
    """Task ids ListTasks shows now."""
    resp = requests.get(f"{emulator.endpoint}/v2/{queue}/tasks", params={"pageSize": 1000}, timeout=10)
    assert resp.status_code == 200, resp.text
    return {t["name"].rsplit("/", 1)[1] for t in resp.json().get("tasks", [])}


def delivered(receiver: Receiver) -> set[str]:
    """Task ids the receiver has seen."""
    return {r.header("X-CloudTasks-TaskName") or "" for r in receiver.received(PATH)}


def assert_dispatched_or_free(emulator: Emulator, queue: str, ids: list[str], receiver: Receiver) -> None:
    """Every listed task is dispatched within the deadline; every name never dispatched can be
    created again (and then is dispatched)."""
    seen = listed(emulator, queue)
    try:
        wait_until(lambda: not listed(emulator, queue) and seen <= delivered(receiver), timeout=DEADLINE,
                   what="every listed task dispatched")
    except AssertionError as exc:
        stuck = sorted((listed(emulator, queue) | seen) - delivered(receiver))
        raise AssertionError(f"listed but never dispatched: {stuck}") from exc
    free = [task_id for task_id in ids if task_id not in delivered(receiver)]
    for task_id in free:
        resp = requests.post(f"{emulator.endpoint}/v2/{queue}/tasks", json={"task": task_json(queue, task_id, receiver)},
                             timeout=10)
        assert resp.status_code == 200, f"{task_id} is neither dispatched nor creatable: {resp.status_code} {resp.text}"
    wait_until(lambda: delivered(receiver) >= set(ids), timeout=DEADLINE, what="re-created tasks dispatched")


def run_abandoned(emulator: Emulator, receiver: Receiver, prefix: str,
                  send: Callable[[Emulator, str, list[str], Receiver], None]) -> None:
    """``CALLS`` creates sent and abandoned by ``send``, then the invariant."""
    queue = new_queue(emulator)
    ids = [f"{prefix}{i}" for i in range(CALLS)]

    send(emulator, queue, ids, receiver)

    assert_dispatched_or_free(emulator, queue, ids, receiver)


def test_grpc_creates_cancelled_after_sending_are_dispatched_or_free(emulator: Emulator, receiver: Receiver) -> None:
    run_abandoned(emulator, receiver, "g", grpc_creates_cancelled)


def test_rest_creates_disconnected_mid_request_are_dispatched_or_free(emulator: Emulator, receiver: Receiver) -> None:
    run_abandoned(emulator, receiver, "r", rest_creates_abandoned)
