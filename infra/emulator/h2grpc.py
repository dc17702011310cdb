"""gRPC over HTTP/2, spoken on the emulator's event loop.

The front door (:mod:`infra.emulator.frontdoor`) hands a connection that opened with the
HTTP/2 preface to :class:`GrpcConnection`, in place, as it hands REST connections to aiohttp.
There is no second server and no byte pump: a unary call is parsed, run and answered on the
loop that runs the service, and one that does not suspend (a create whose commit the store
makes at once, a get, a list) is answered inside ``data_received``, in one pass of the loop.

What it implements, and only that: unary calls (every Cloud Tasks, Locations and Operations
method is unary) in the gRPC over HTTP/2 wire format: length-prefixed messages, ``identity``,
``gzip`` or ``deflate`` compression of a request, trailers carrying ``grpc-status`` and a
percent-encoded ``grpc-message``, trailers-only answers for errors, flow control both ways,
``RST_STREAM`` from a client that gave up (the call's task is cancelled: see
``TasksService`` for why a create still either fully exists or does not), ``grpc-timeout``
(``DEADLINE_EXCEEDED``), PING, SETTINGS, and ``GOAWAY`` when the emulator stops or a client
breaks the protocol.  Statuses and messages for a malformed call follow grpc-core's
(``UNIMPLEMENTED`` "Method not found!", ``RESOURCE_EXHAUSTED`` "Received message larger than
max (N vs. M)").  The framing is :mod:`infra.emulator.http2`; header blocks are decoded by
``hpack`` there.  It was built on the ``h2`` library first: h2's general state machine cost a
sequential create ~0.1 ms of the emulator's CPU, more than the service's own work.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ordertasks.infra.emulator import http2
from ordertasks.infra.emulator.errors import STATUS_CODES, RpcError
from ordertasks.infra.emulator.http2 import Frame, ProtocolError

log = logging.getLogger("ordertasks.emulator.grpc")
Call = Callable[[bytes], Awaitable[bytes]]
_TIMEOUT_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}
_ANSWER_HEADERS = http2.STATUS_200 + http2.literal_indexed_name(http2.CONTENT_TYPE, b"application/grpc")
_OK_TRAILERS = http2.literal(b"grpc-status", b"0")
MAX_STREAMS = 1000  # calls open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS)
MAX_FRAME = 1 << 20  # what we accept (SETTINGS_MAX_FRAME_SIZE): a request of up to 1 MiB in one frame


@dataclass
class Stream:
    """One call in progress: its method path, headers, request bytes and the task running it."""

    path: bytes
    headers: dict[bytes, bytes]
    body: bytearray = field(default_factory=bytearray)
    task: asyncio.Task[None] | None = None
    timed_out: bool = False
    send_window: int = http2.DEFAULT_WINDOW
    ended: bool = False  # the client's side is closed (END_STREAM seen)

    def cancel(self) -> None:
        """Cancel the call's task, after the step it has already been given: a task cancelled
        before its first step ends at once, and the call, already suspended inside ``resume``,
        would never see the cancel (the ready queue runs in order, so ``call_soon`` lands after)."""
        if self.task is not None:
            asyncio.get_running_loop().call_soon(self.task.cancel)


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


def _trailers(status: str, message: str = "") -> bytes:
    block = http2.literal(b"grpc-status", str(STATUS_CODES[status][0]).encode())
    if message:
        block += http2.literal(b"grpc-message", quote(message, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~").encode())
    return block


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
        self.window = limit + 65_536  # per stream: the largest request flows in without a WINDOW_UPDATE
        self.transport: asyncio.Transport | None = None
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.preface_seen = False
        self.headers = http2.HeaderBlocks()
        self.streams: dict[int, Stream] = {}
        self.last_stream = 0
        self.header_block: tuple[int, int, bytearray] | None = None  # stream, flags, fragments so far
        self.send_window = http2.DEFAULT_WINDOW
        self.peer_window = http2.DEFAULT_WINDOW
        self.peer_max_frame = http2.DEFAULT_MAX_FRAME
        self.unacknowledged = 0
        self.receiving = False  # inside data_received: one write at its end carries every answer
        self.window_open = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send our settings and open the connection's receive window as wide as a stream's."""
        self.transport = transport  # type: ignore[assignment]
        self.connections.add(self)
        self.outbox += http2.settings([(http2.MAX_CONCURRENT_STREAMS, MAX_STREAMS), (http2.INITIAL_WINDOW_SIZE, self.window),
                                       (http2.MAX_FRAME_SIZE, MAX_FRAME)])
        self.outbox += http2.window_update(0, self.window - http2.DEFAULT_WINDOW)
        self._flush()

    def data_received(self, data: bytes) -> None:
        """Act on every complete frame received; answer what can be answered at once."""
        self.inbox += data
        self.receiving = True
        try:
            if not self._preface():
                return
            for item in http2.frames(self.inbox, MAX_FRAME):
                self._on(item)
        except ProtocolError as exc:
            log.info("closing a gRPC connection: %s", exc)
            self.receiving = False
            self._fail(exc.code)
            return
        finally:
            self.receiving = False
        if self.unacknowledged >= self.window // 2:  # give the window back in large steps, not per call
            self.outbox += http2.window_update(0, self.unacknowledged)
            self.unacknowledged = 0
        self._flush()

    def _preface(self) -> bool:
        """True once the client's connection preface has been read (and taken off the inbox)."""
        if not self.preface_seen:
            if len(self.inbox) < len(http2.PREFACE):
                return False
            if self.inbox[:len(http2.PREFACE)] != http2.PREFACE:
                raise ProtocolError("the connection did not start with the HTTP/2 preface")
            del self.inbox[:len(http2.PREFACE)]
            self.preface_seen = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        """The client went away: cancel its calls (a create in progress still completes)."""
        self.connections.discard(self)
        for stream in self.streams.values():
            stream.cancel()
        self.streams.clear()
        self.window_open.set()

    def goaway(self) -> None:
        """Tell the client no new calls will be taken (the emulator is stopping), then close."""
        if not self._closed():
            self._fail(http2.NO_ERROR)

    def _fail(self, code: int) -> None:
        self.outbox += http2.goaway(self.last_stream, code)
        self._flush()
        self._close()

    def _on(self, item: Frame) -> None:
        if self.header_block is not None and item.kind != http2.CONTINUATION:
            raise ProtocolError("a header block was interrupted by another frame")
        kind = item.kind
        if kind == http2.HEADERS:
            self._on_headers(item)
        elif kind == http2.DATA:
            self._on_data(item)
        elif kind == http2.CONTINUATION:
            self._on_continuation(item)
        elif kind == http2.SETTINGS:
            self._on_settings(item)
        elif kind == http2.WINDOW_UPDATE:
            self._on_window_update(item)
        elif kind == http2.PING:
            if not item.flags & http2.ACK:
                self.outbox += http2.frame(http2.PING, http2.ACK, 0, item.payload)
        elif kind == http2.RST_STREAM:
            self._reset(item.stream)
        elif kind == http2.PUSH_PROMISE:
            raise ProtocolError("a client may not send PUSH_PROMISE")
        # PRIORITY, GOAWAY and unknown types need nothing from a server of unary calls

    def _on_headers(self, item: Frame) -> None:
        stream = item.stream
        if stream == 0 or not stream % 2:
            raise ProtocolError(f"HEADERS on stream {stream}, which a client cannot open")
        self.header_block = (stream, item.flags, bytearray(http2.unpadded(item)))
        if item.flags & http2.END_HEADERS:
            self._header_block_done()

    def _on_continuation(self, item: Frame) -> None:
        if self.header_block is None or item.stream != self.header_block[0]:
            raise ProtocolError("a CONTINUATION frame that continues nothing")
        self.header_block[2].extend(item.payload)
        if item.flags & http2.END_HEADERS:
            self._header_block_done()

    def _header_block_done(self) -> None:
        assert self.header_block is not None
        stream_id, flags, block = self.header_block
        self.header_block = None
        headers = self.headers.decode(bytes(block))
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id <= self.last_stream:
                raise ProtocolError(f"stream {stream_id} was opened before")
            self.last_stream = stream_id
            if len(self.streams) >= MAX_STREAMS:  # what our SETTINGS allowed: refuse, the client may retry
                self.outbox += http2.rst_stream(stream_id, http2.REFUSED_STREAM)
                return
            stream = self.streams[stream_id] = Stream(headers.get(b":path", b""), headers,  # type: ignore[arg-type]
                                                      send_window=self.peer_window)
        if flags & http2.END_STREAM:
            self._end_of_request(stream_id, stream)

    def _on_data(self, item: Frame) -> None:
        self.unacknowledged += len(item.payload)
        stream = self.streams.get(item.stream)
        if stream is None or stream.ended:
            return  # a stream we answered already (or never knew): its bytes are dropped
        stream.body += http2.unpadded(item)
        if len(stream.body) > self.limit + 5:
            # Answered now; the rest of the request is acknowledged and dropped.
            self._answer_error(item.stream, RpcError(
                "RESOURCE_EXHAUSTED", f"Received message larger than max ({len(stream.body) - 5} vs. {self.limit})"))
            return
        if item.flags & http2.END_STREAM:
            self._end_of_request(item.stream, stream)

    def _on_settings(self, item: Frame) -> None:
        if item.flags & http2.ACK:
            return
        for key, value in http2.read_settings(item.payload):
            if key == http2.INITIAL_WINDOW_SIZE:
                if value > http2.MAX_WINDOW:
                    raise ProtocolError("SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1", http2.FLOW_CONTROL_ERROR)
                for stream in self.streams.values():
                    stream.send_window += value - self.peer_window
                self.peer_window = value
            elif key == http2.MAX_FRAME_SIZE:
                self.peer_max_frame = value
        self.outbox += http2.frame(http2.SETTINGS, http2.ACK, 0)
        self.window_open.set()

    def _on_window_update(self, item: Frame) -> None:
        increment = http2.read_increment(item.payload)
        if item.stream == 0:
            self.send_window += increment
        elif item.stream in self.streams:
            self.streams[item.stream].send_window += increment
        self.window_open.set()

    def _reset(self, stream_id: int) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            stream.cancel()

    def _end_of_request(self, stream_id: int, stream: Stream) -> None:
        stream.ended = True
        self._start(stream_id)

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
        stream.cancel()

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
        stream = self.streams.pop(stream_id, None)
        if stream is None or self._closed():
            return
        block = _ANSWER_HEADERS + _trailers(error.status, error.message)
        self._headers(stream_id, block, end_stream=True)
        if not stream.ended:  # the client is still sending: stop it, as grpc servers do
            self.outbox += http2.rst_stream(stream_id, http2.NO_ERROR)
        self._flush()

    async def _answer(self, stream_id: int, message: bytes) -> None:
        stream = self.streams.get(stream_id)
        if stream is None or self._closed():
            return
        payload = memoryview(b"\x00" + len(message).to_bytes(4, "big") + message)
        try:
            self._headers(stream_id, _ANSWER_HEADERS, end_stream=False)
            while payload:
                size = min(self.send_window, stream.send_window, self.peer_max_frame, len(payload))
                if size <= 0:
                    await self._window(stream_id)
                    continue
                self.outbox += http2.frame(http2.DATA, 0, stream_id, payload[:size].tobytes())
                self.send_window -= size
                stream.send_window -= size
                payload = payload[size:]
            self._headers(stream_id, _OK_TRAILERS, end_stream=True)
        except ConnectionError:
            return
        finally:
            self.streams.pop(stream_id, None)
            self._flush()

    def _headers(self, stream_id: int, block: bytes, end_stream: bool) -> None:
        """A HEADERS frame, with CONTINUATION frames if the block is larger than a frame."""
        flags = http2.END_STREAM if end_stream else 0
        size = self.peer_max_frame
        if len(block) <= size:
            self.outbox += http2.frame(http2.HEADERS, flags | http2.END_HEADERS, stream_id, block)
            return
        self.outbox += http2.frame(http2.HEADERS, flags, stream_id, block[:size])
        rest = block[size:]
        while rest:
            last = len(rest) <= size
            self.outbox += http2.frame(http2.CONTINUATION, http2.END_HEADERS if last else 0, stream_id, rest[:size])
            rest = rest[size:]

    async def _window(self, stream_id: int) -> None:
        """Wait until the client opens its window (or leaves)."""
        self._flush()
        self.window_open.clear()
        await self.window_open.wait()
        if stream_id not in self.streams or self._closed():
            raise ConnectionError("the client went away while an answer waited for its window")

    def _flush(self) -> None:
        if self.receiving:
            return  # data_received writes once, at its end
        if self.outbox and not self._closed():
            assert self.transport is not None
            self.transport.write(bytes(self.outbox))
        self.outbox.clear()

    def _closed(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()
