"""gRPC over HTTP/2, spoken on the emulator's event loop (``h2`` for the framing).

The front door (:mod:`infra.emulator.frontdoor`) hands a connection that opened with the
HTTP/2 preface to :class:`GrpcConnection`, in place, as it hands REST connections to aiohttp.
There is no second server and no byte pump: a unary call is parsed, run and answered on the
loop that runs the service, so a ``CreateTask`` costs one pass through the loop.

What it implements, and only that: unary calls (every Cloud Tasks, Locations and Operations
method is unary) in the gRPC over HTTP/2 wire format: length-prefixed messages, ``identity``,
``gzip`` or ``deflate`` compression of a request, trailers carrying ``grpc-status`` and a
percent-encoded ``grpc-message``, trailers-only answers for errors, flow control both ways,
``RST_STREAM`` from a client that gave up (the call's task is cancelled: see
``TasksService`` for why a create still either fully exists or does not), ``grpc-timeout``
(``DEADLINE_EXCEEDED``), and ``GOAWAY`` when the emulator stops.  Statuses and messages for a
malformed call follow grpc-core's (``UNIMPLEMENTED`` "Method not found!", ``RESOURCE_EXHAUSTED``
"Received message larger than max (N vs. M)").
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from ordertasks.infra.emulator.errors import RpcError

log = logging.getLogger("ordertasks.emulator.grpc")
Call = Callable[[bytes], Awaitable[bytes]]
STATUS_CODES = {"OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
                "NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
                "FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12,
                "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16}
WINDOW = 1 << 22  # what a client may send before we acknowledge it: a request of up to 4 MiB flows in at once
_TIMEOUT_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}
_RESPONSE_HEADERS = ((b":status", b"200"), (b"content-type", b"application/grpc"))
# Headers are taken as bytes and not re-validated: we read four of them (``:path``,
# ``grpc-encoding``, ``grpc-timeout``, and their presence), and h2's per-header checks cost a
# sequential call more than the rest of the framing.  Frames, HPACK and flow control are
# still checked by h2, and an unknown path is UNIMPLEMENTED whatever the other headers hold.
_CONFIG = h2.config.H2Configuration(client_side=False, header_encoding=None, validate_inbound_headers=False,
                                    normalize_inbound_headers=False, validate_outbound_headers=False,
                                    normalize_outbound_headers=False)


@dataclass
class Stream:
    """One call in progress: its method path, headers, request bytes and the task running it."""

    path: bytes
    headers: dict[bytes, bytes]
    body: bytearray = field(default_factory=bytearray)
    task: asyncio.Task[None] | None = None
    timed_out: bool = False


async def resume(coroutine: Coroutine[Any, Any, None], waiting_for: Any) -> None:
    """Go on with ``coroutine``, which already ran up to its first suspension, waiting for
    ``waiting_for`` (the future it yielded, or None for a bare yield), exactly as a task that
    had started it would: it reads the future's outcome itself when resumed, and a cancel of
    this task reaches it through that future or, if the future was already done, thrown in."""
    while True:
        if waiting_for is not None:
            # What a task does with a future its coroutine yields: take over the "blocking"
            # mark the yield set, or awaiting the future here would refuse it.
            waiting_for._asyncio_future_blocking = False
        try:
            await (asyncio.sleep(0) if waiting_for is None else waiting_for)
        except asyncio.CancelledError:
            if waiting_for is None or not waiting_for.cancelled():
                try:
                    waiting_for = coroutine.throw(asyncio.CancelledError())
                except StopIteration:
                    return
                continue
        except BaseException:  # noqa: BLE001, S110 - the future's own failure: the coroutine reads it below
            pass
        try:
            waiting_for = coroutine.send(None)
        except StopIteration:
            return


def grpc_timeout(value: bytes | None) -> float | None:
    """Seconds in a ``grpc-timeout`` header (``"20S"``, ``"150m"``), or None when absent or malformed."""
    if not value or value[-1:] not in _TIMEOUT_UNITS or not value[:-1].isdigit():
        return None
    return int(value[:-1]) * _TIMEOUT_UNITS[value[-1:]]


def _trailers(status: str, message: str = "") -> list[tuple[bytes, bytes]]:
    trailers = [(b"grpc-status", str(STATUS_CODES[status]).encode())]
    if message:
        trailers.append((b"grpc-message", quote(message, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~").encode()))
    return trailers


def unframe(body: bytes | bytearray, encoding: bytes | None, limit: int) -> bytes:
    """The one message of a unary request body (a 5-byte prefix, then the message).

    Raises :class:`RpcError` with the status grpc-core would answer for a malformed body.
    """
    if len(body) < 5:
        raise RpcError("INTERNAL", "Failed to parse the request: no message in the stream")
    compressed, length = body[0], int.from_bytes(body[1:5], "big")
    if length > limit:
        raise RpcError("RESOURCE_EXHAUSTED", f"Received message larger than max ({length} vs. {limit})")
    if len(body) != 5 + length:
        raise RpcError("UNIMPLEMENTED", "a unary method takes exactly one request message")
    message = bytes(body[5:])
    return _decompress(message, encoding, limit) if compressed else message


def _decompress(message: bytes, encoding: bytes | None, limit: int) -> bytes:
    if encoding not in (b"gzip", b"deflate"):
        raise RpcError("UNIMPLEMENTED", f"Compression algorithm '{(encoding or b'identity').decode()}' is disabled.")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == b"gzip" else zlib.MAX_WBITS)
    try:
        plain = inflater.decompress(message, limit + 1)
    except zlib.error as exc:
        raise RpcError("INTERNAL", f"Failed to decompress the request: {exc}") from None
    if len(plain) > limit:
        raise RpcError("RESOURCE_EXHAUSTED", f"Received message larger than max (more than {limit} vs. {limit})")
    return plain


class GrpcConnection(asyncio.Protocol):
    """One client's HTTP/2 connection: its streams, each a unary call to a method of ``calls``."""

    def __init__(self, calls: Mapping[bytes, Call], limit: int, connections: set[GrpcConnection]) -> None:
        self.calls, self.limit, self.connections = calls, limit, connections
        self.h2 = h2.connection.H2Connection(config=_CONFIG)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Stream] = {}
        self.window_open = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send our settings: a large window, so requests up to the size limit arrive at once."""
        self.transport = transport  # type: ignore[assignment]
        self.connections.add(self)
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000})
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(WINDOW)
        self._flush()

    def data_received(self, data: bytes) -> None:
        """Feed the frames to h2 and act on what they mean."""
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            log.info("closing a gRPC connection: %s", exc)
            self._flush()
            self._close()
            return
        for event in events:
            self._on(event)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        """The client went away: cancel its calls (a create in progress still completes)."""
        self.connections.discard(self)
        for stream in self.streams.values():
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()
        self.window_open.set()

    def goaway(self) -> None:
        """Tell the client no new calls will be taken (the emulator is stopping), then close."""
        if self.transport is not None and not self.transport.is_closing():
            self.h2.close_connection()
            self._flush()
            self._close()

    def _on(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            headers = dict(event.headers or ())
            self.streams[event.stream_id] = Stream(headers.get(b":path", b""), headers)
        elif isinstance(event, h2.events.DataReceived):
            self._on_data(event)
        elif isinstance(event, h2.events.StreamEnded):
            self._start(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self._reset(event.stream_id)
        elif isinstance(event, h2.events.WindowUpdated):
            self.window_open.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._close()

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if event.flow_controlled_length:
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        if stream is None or event.data is None:
            return
        stream.body += event.data
        if len(stream.body) > self.limit + 5:
            # Answered now; the rest of the request is acknowledged and dropped.
            self._answer_error(event.stream_id, RpcError(
                "RESOURCE_EXHAUSTED", f"Received message larger than max ({len(stream.body) - 5} vs. {self.limit})"))

    def _reset(self, stream_id: int) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is not None and stream.task is not None:
            stream.task.cancel()

    def _start(self, stream_id: int) -> None:
        """Run the call at once, here in ``data_received``: most calls (a create whose commit the
        store makes at once, a get, a list) finish without suspending, so they are answered in
        the same pass of the loop, with no task.  One that suspends goes on as a task, under the
        call's ``grpc-timeout``."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.task is not None:
            return
        call = self._run(stream_id, stream)
        try:
            waiting_for = call.send(None)
        except StopIteration:
            return
        loop = asyncio.get_running_loop()
        stream.task = loop.create_task(resume(call, waiting_for))
        timeout = grpc_timeout(stream.headers.get(b"grpc-timeout"))
        if timeout is not None:
            timer = loop.call_later(timeout, self._deadline, stream)
            stream.task.add_done_callback(lambda _: timer.cancel())

    @staticmethod
    def _deadline(stream: Stream) -> None:
        stream.timed_out = True
        if stream.task is not None:
            stream.task.cancel()

    async def _run(self, stream_id: int, stream: Stream) -> None:
        call = self.calls.get(stream.path)
        try:
            if call is None:
                raise RpcError("UNIMPLEMENTED", "Method not found!")
            answer = await call(unframe(stream.body, stream.headers.get(b"grpc-encoding"), self.limit))
        except RpcError as exc:
            self._answer_error(stream_id, exc)
        except asyncio.CancelledError:
            if not stream.timed_out:
                raise
            self._answer_error(stream_id, RpcError("DEADLINE_EXCEEDED", "Deadline Exceeded"))
        else:
            await self._answer(stream_id, answer)

    def _answer_error(self, stream_id: int, error: RpcError) -> None:
        """A trailers-only answer: the status in the one HEADERS frame, which ends the stream."""
        if self.streams.pop(stream_id, None) is None or self._closed():
            return
        try:
            self.h2.send_headers(stream_id, [*_RESPONSE_HEADERS, *_trailers(error.status, error.message)],
                                 end_stream=True)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return
        self._flush()

    async def _answer(self, stream_id: int, message: bytes) -> None:
        if stream_id not in self.streams or self._closed():
            return
        payload = memoryview(b"\x00" + len(message).to_bytes(4, "big") + message)
        try:
            self.h2.send_headers(stream_id, _RESPONSE_HEADERS)
            while payload:
                size = min(self.h2.local_flow_control_window(stream_id), len(payload), self.h2.max_outbound_frame_size)
                if size <= 0:
                    await self._window(stream_id)
                    continue
                self.h2.send_data(stream_id, payload[:size].tobytes())
                payload = payload[size:]
            self.h2.send_headers(stream_id, _trailers("OK"), end_stream=True)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, ConnectionError):
            return
        finally:
            self.streams.pop(stream_id, None)
            self._flush()

    async def _window(self, stream_id: int) -> None:
        """Wait until the client opens its window (or leaves)."""
        self._flush()
        self.window_open.clear()
        await self.window_open.wait()
        if stream_id not in self.streams or self._closed():
            raise ConnectionError("the client went away while an answer waited for its window")

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self._closed():
            assert self.transport is not None
            self.transport.write(data)

    def _closed(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()
