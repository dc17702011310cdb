"""gRPC spoken on the emulator's event loop (``infra/emulator/h2grpc.py``).

Two levels: the official Python client (grpcio, its own HTTP/2 stack) against a real
emulator for what a client can see (unknown methods, compression, size limit, many calls on
one connection, answers larger than the flow-control window), and an h2 client connection
driving :class:`GrpcConnection` in this process for what needs a call that waits
(``grpc-timeout``, a client's ``RST_STREAM``) and for :func:`resume`, which continues a call
that suspended after it was started in ``data_received``.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.events
import pytest
from google.cloud import tasks_v2

from ordertasks.infra.emulator.errors import RpcError
from ordertasks.infra.emulator.h2grpc import GrpcConnection, grpc_timeout, resume, unframe
from tests.emulator.conftest import PARENT, Emulator

GET_QUEUE = "/google.cloud.tasks.v2.CloudTasks/GetQueue"


def _raw_call(emulator: Emulator, method: str, request: bytes, **channel: Any) -> bytes:
    with grpc.insecure_channel(f"127.0.0.1:{emulator.port}", **channel) as ch:
        return ch.unary_unary(method)(request, timeout=10)  # type: ignore[no-any-return]


def _get_queue_request(name: str) -> bytes:
    return tasks_v2.GetQueueRequest.serialize(tasks_v2.GetQueueRequest(name=name))


def test_an_unknown_method_is_unimplemented_as_grpc_servers_answer(emulator: Emulator) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        _raw_call(emulator, "/google.cloud.tasks.v2.CloudTasks/NoSuchMethod", b"")

    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert raised.value.details() == "Method not found!"


def test_a_gzip_compressed_request_is_read(emulator: Emulator, make_queue: Callable[..., str]) -> None:
    queue = make_queue()

    answer = _raw_call(emulator, GET_QUEUE, _get_queue_request(queue), compression=grpc.Compression.Gzip)

    assert tasks_v2.Queue.deserialize(answer).name == queue


def test_a_request_over_the_limit_is_resource_exhausted(emulator: Emulator) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        _raw_call(emulator, GET_QUEUE, _get_queue_request("x" * (5 * 1024 * 1024)))

    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (raised.value.details() or "")


def test_an_error_keeps_its_code_and_message(emulator: Emulator) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        _raw_call(emulator, GET_QUEUE, _get_queue_request(f"{PARENT}/queues/absent-{id(emulator)}"))

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details().startswith("Queue does not exist.")


def test_many_calls_at_once_on_one_connection_each_get_their_answer(emulator: Emulator,
                                                                    make_queue: Callable[..., str]) -> None:
    queues = [make_queue() for _ in range(8)]
    with grpc.insecure_channel(f"127.0.0.1:{emulator.port}") as ch:
        get = ch.unary_unary(GET_QUEUE)
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda i: get(_get_queue_request(queues[i % 8]), timeout=20), range(400)))

    assert [tasks_v2.Queue.deserialize(a).name for a in answers] == [queues[i % 8] for i in range(400)]


def test_an_answer_larger_than_the_flow_control_window_arrives_whole(emulator: Emulator,
                                                                     make_queue: Callable[..., str]) -> None:
    """60 tasks of 20 KB bodies listed in the FULL view: ~1.2 MB, beyond HTTP/2's 64 KiB window."""
    client = emulator.client("grpc")
    queue = make_queue()
    client.pause_queue(name=queue)
    body = b"b" * 20_000
    for i in range(60):
        client.create_task(parent=queue, task={"name": f"{queue}/tasks/big-{i}",
                                               "http_request": {"url": "http://127.0.0.1:9/", "body": body}})

    tasks = list(client.list_tasks(request={"parent": queue, "response_view": "FULL", "page_size": 100}))

    assert len(tasks) == 60 and all(t.http_request.body == body for t in tasks)


# -- in this process: an h2 client connection driving GrpcConnection -------------------------

class Wire(asyncio.Transport):
    """The server side's transport: what GrpcConnection writes goes to the client connection."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


class Client:
    """An h2 client connection to a :class:`GrpcConnection` over :class:`Wire`."""

    def __init__(self, calls: dict[bytes, Callable[[bytes], Awaitable[bytes]]]) -> None:
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.wire = Wire()
        self.server = GrpcConnection(calls, 1024, set())
        self.server.connection_made(self.wire)
        self.h2.initiate_connection()
        self.events: list[h2.events.Event] = []
        self.pump()

    def pump(self) -> None:
        """Move bytes both ways until neither side has anything to send."""
        while True:
            out = self.h2.data_to_send()
            if out:
                self.server.data_received(out)
            if not self.wire.sent and not out:
                return
            data, self.wire.sent = bytes(self.wire.sent), bytearray()
            if data:
                self.events += self.h2.receive_data(data)

    def call(self, path: str, message: bytes, timeout: str | None = None) -> int:
        """Start a unary call; returns its stream id."""
        stream = self.h2.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "test"),
                   ("content-type", "application/grpc"), ("te", "trailers")]
        self.h2.send_headers(stream, headers + ([("grpc-timeout", timeout)] if timeout else []))
        self.h2.send_data(stream, b"\x00" + len(message).to_bytes(4, "big") + message, end_stream=True)
        self.pump()
        return stream

    def status(self, stream: int) -> dict[str, str]:
        """The stream's trailers (or trailers-only headers) received so far."""
        found: dict[str, str] = {}
        for event in self.events:
            if isinstance(event, (h2.events.TrailersReceived, h2.events.ResponseReceived)) and \
                    event.stream_id == stream:
                found.update(dict(event.headers or ()))
        return found


async def _until(condition: Callable[[], bool], client: Client) -> None:
    for _ in range(500):
        client.pump()
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def test_a_call_that_waits_past_its_grpc_timeout_is_deadline_exceeded() -> None:
    finished: list[bool] = []

    async def slow(request: bytes) -> bytes:
        await asyncio.sleep(5)
        finished.append(True)
        return request

    async def scenario() -> None:
        client = Client({b"/s/Slow": slow})
        stream = client.call("/s/Slow", b"x", timeout="50m")
        await _until(lambda: "grpc-status" in client.status(stream), client)
        assert client.status(stream)["grpc-status"] == "4"
        assert client.status(stream)["grpc-message"] == "Deadline Exceeded"
    asyncio.run(scenario())
    assert finished == []


def test_a_reset_stream_cancels_its_call() -> None:
    cancelled = asyncio.Event()

    async def waits(request: bytes) -> bytes:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return request

    async def scenario() -> None:
        client = Client({b"/s/Wait": waits})
        stream = client.call("/s/Wait", b"x")  # started in data_received: now suspended in its sleep
        client.h2.reset_stream(stream)
        client.pump()
        await asyncio.wait_for(cancelled.wait(), 5)
    asyncio.run(scenario())


def test_a_call_answered_at_once_needs_no_task_and_a_waiting_one_is_answered_later() -> None:
    async def at_once(request: bytes) -> bytes:
        return request.upper()

    async def later(request: bytes) -> bytes:
        await asyncio.sleep(0.01)
        return request * 2

    async def scenario() -> None:
        client = Client({b"/s/Now": at_once, b"/s/Later": later})
        now = client.call("/s/Now", b"ab")
        assert client.status(now)["grpc-status"] == "0"  # answered inside data_received
        wait = client.call("/s/Later", b"ab")
        assert "grpc-status" not in client.status(wait)
        await _until(lambda: "grpc-status" in client.status(wait), client)
        data = b"".join(e.data for e in client.events if isinstance(e, h2.events.DataReceived) and e.stream_id == wait)
        assert data == b"\x00\x00\x00\x00\x04abab"
    asyncio.run(scenario())


def test_an_rpc_error_is_a_trailers_only_answer_with_a_percent_encoded_message() -> None:
    async def refuses(request: bytes) -> bytes:
        raise RpcError("FAILED_PRECONDITION", "100% not ready: é")

    async def scenario() -> None:
        client = Client({b"/s/No": refuses})
        stream = client.call("/s/No", b"x")
        assert client.status(stream) == {":status": "200", "content-type": "application/grpc",
                                         "grpc-status": "9", "grpc-message": "100%25 not ready: %C3%A9"}
    asyncio.run(scenario())


# -- the pieces ----------------------------------------------------------------------------

@pytest.mark.parametrize(("header", "seconds"), [(b"20S", 20.0), (b"150m", 0.15), (b"2M", 120.0), (b"1H", 3600.0),
                                                 (b"5000u", 0.005), (b"7n", 7e-9), (None, None), (b"", None),
                                                 (b"12", None), (b"x5S", None), (b"5s", None)])
def test_grpc_timeout_header(header: bytes | None, seconds: float | None) -> None:
    assert grpc_timeout(header) == (None if seconds is None else pytest.approx(seconds))


def test_unframe_reads_plain_and_compressed_messages_and_refuses_the_rest() -> None:
    frame = lambda flag, payload: bytes([flag]) + len(payload).to_bytes(4, "big") + payload  # noqa: E731
    assert unframe(frame(0, b"abc"), None, 64) == b"abc"
    assert unframe(frame(1, gzip.compress(b"abc")), b"gzip", 64) == b"abc"
    with pytest.raises(RpcError) as unknown:
        unframe(frame(1, b"abc"), b"snappy", 64)
    assert unknown.value.status == "UNIMPLEMENTED"
    with pytest.raises(RpcError) as too_big:
        unframe(frame(0, b"x" * 65), None, 64)
    assert too_big.value.status == "RESOURCE_EXHAUSTED"
    with pytest.raises(RpcError) as inflated:
        unframe(frame(1, gzip.compress(b"x" * 1000)), b"gzip", 64)
    assert inflated.value.status == "RESOURCE_EXHAUSTED"
    with pytest.raises(RpcError):
        unframe(frame(0, b"abc") + frame(0, b"d"), None, 64)


async def _started(coroutine: Any) -> asyncio.Task[None]:
    """Start ``coroutine`` the way GrpcConnection does: one step here, then ``resume`` as a task."""
    waiting_for = coroutine.send(None)
    return asyncio.get_running_loop().create_task(resume(coroutine, waiting_for))


def test_resume_goes_on_after_a_gather_and_a_bare_yield() -> None:
    async def child(i: int) -> int:
        await asyncio.sleep(0)
        return i

    async def work(out: list[Any]) -> None:
        out.append(await asyncio.gather(*(child(i) for i in range(3))))
        await asyncio.sleep(0)
        out.append("after a bare yield")

    async def scenario() -> list[Any]:
        out: list[Any] = []
        await await_task(await _started(work(out)))
        return out
    assert asyncio.run(scenario()) == [[0, 1, 2], "after a bare yield"]


async def await_task(task: asyncio.Task[None]) -> None:
    await asyncio.wait_for(task, 5)


def test_resume_hands_the_coroutine_its_futures_failure() -> None:
    async def work(future: asyncio.Future[None], out: list[str]) -> None:
        try:
            await future
        except ValueError as exc:
            out.append(str(exc))

    async def scenario() -> list[str]:
        out: list[str] = []
        future = asyncio.get_running_loop().create_future()
        task = await _started(work(future, out))
        future.set_exception(ValueError("the store failed"))
        await await_task(task)
        return out
    assert asyncio.run(scenario()) == ["the store failed"]


def test_a_cancel_reaches_the_coroutine_whether_or_not_its_future_was_done() -> None:
    async def work(future: asyncio.Future[None], out: list[str]) -> None:
        try:
            await future
        except asyncio.CancelledError:
            out.append("cancelled at its await")
            raise

    async def scenario(done_first: bool) -> list[str]:
        out: list[str] = []
        future = asyncio.get_running_loop().create_future()
        task = await _started(work(future, out))
        await asyncio.sleep(0)
        if done_first:
            future.set_result(None)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return out
    assert asyncio.run(scenario(False)) == ["cancelled at its await"]
    assert asyncio.run(scenario(True)) == ["cancelled at its await"]
