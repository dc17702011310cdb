"""One port for both transports: tell gRPC from REST by the first bytes of a connection.

gRPC clients open an HTTP/2 connection with "prior knowledge": their first 24 bytes are the
HTTP/2 connection preface ``PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n``.  REST clients (Python
``transport="rest"``, Node ``fallback``, gcloud) speak HTTP/1.1, whose request line can never
start that way.  :class:`Sniffer` reads just enough bytes to decide, then

- REST: switches the connection in place to aiohttp's protocol (``transport.set_protocol``)
  and replays the bytes read so far, so REST costs nothing beyond the sniff;
- gRPC: pipes the connection, both ways and with flow control, to the ``grpc.aio`` server
  listening on a private unix socket (grpc cannot adopt an accepted socket from Python).

A connection that has not sent enough bytes to decide within ``SNIFF_TIMEOUT`` is closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("ordertasks.emulator.frontdoor")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SNIFF_TIMEOUT = 10.0


def classify(head: bytes) -> str | None:
    """``"grpc"``, ``"rest"``, or ``None`` while ``head`` is still a prefix of the preface."""
    if head[:len(PREFACE)] == PREFACE[:len(head)]:
        return "grpc" if len(head) >= len(PREFACE) else None
    return "rest"


class Pipe(asyncio.Protocol):
    """One direction's receiving end of a piped connection: writes what it reads to ``peer``."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember our transport."""
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        """Forward to the other side."""
        if self.peer is not None:
            self.peer.write(data)

    def eof_received(self) -> bool | None:
        """Half-close the other side's writing end."""
        if self.peer is not None and self.peer.can_write_eof():
            self.peer.write_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        """Close the other side too."""
        if self.peer is not None:
            self.peer.close()

    def pause_writing(self) -> None:
        """Our transport's buffer is full: stop reading from the peer."""
        if self.peer is not None:
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        """Our transport drained: read from the peer again."""
        if self.peer is not None:
            self.peer.resume_reading()


class Sniffer(asyncio.Protocol):
    """The protocol of every accepted connection until it knows which transport it carries."""

    def __init__(self, rest_factory: Callable[[], asyncio.Protocol], grpc_socket: str) -> None:
        self.rest_factory, self.grpc_socket = rest_factory, grpc_socket
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the decision timer."""
        self.transport = transport  # type: ignore[assignment]
        self.timer = asyncio.get_running_loop().call_later(SNIFF_TIMEOUT, transport.close)

    def data_received(self, data: bytes) -> None:
        """Collect bytes until they say gRPC or REST, then hand the connection over."""
        self.head += data
        kind = classify(self.head)
        if kind is None:
            return
        if self.timer is not None:
            self.timer.cancel()
        if kind == "rest":
            self._to_rest()
        else:
            self._to_grpc()

    def connection_lost(self, exc: Exception | None) -> None:
        """The client left before deciding."""
        if self.timer is not None:
            self.timer.cancel()

    def _to_rest(self) -> None:
        assert self.transport is not None
        protocol = self.rest_factory()
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        protocol.data_received(self.head)

    def _to_grpc(self) -> None:
        assert self.transport is not None
        front = Pipe()
        front.connection_made(self.transport)
        self.transport.set_protocol(front)
        self.transport.pause_reading()
        asyncio.get_running_loop().create_task(self._connect_back(front, self.head))

    async def _connect_back(self, front: Pipe, head: bytes) -> None:
        assert front.transport is not None
        loop = asyncio.get_running_loop()
        try:
            back_transport, back = await loop.create_unix_connection(Pipe, self.grpc_socket)
        except OSError as exc:
            log.error("gRPC back end unreachable: %s", exc)
            front.transport.close()
            return
        back.peer, front.peer = front.transport, back_transport  # type: ignore[assignment]
        back_transport.write(head)
        if front.transport.is_closing():
            back_transport.close()
            return
        front.transport.resume_reading()


def sniffer_factory(rest_factory: Callable[[], Any], grpc_socket: str) -> Callable[[], Sniffer]:
    """The protocol factory for ``loop.create_server``."""
    return lambda: Sniffer(rest_factory, grpc_socket)
