"""One port for both transports: tell gRPC from REST by the first bytes of a connection.

gRPC clients open an HTTP/2 connection with "prior knowledge": their first 24 bytes are the
HTTP/2 connection preface ``PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n``.  REST clients (Python
``transport="rest"``, Node ``fallback``, gcloud) speak HTTP/1.1, whose request line can never
start that way.  :class:`Sniffer` reads just enough bytes to decide, then

- REST: switches the connection in place to aiohttp's protocol (``transport.set_protocol``)
  and replays the bytes read so far, so REST costs nothing beyond the sniff;
- gRPC: switches it, the same way, to :class:`infra.emulator.h2grpc.GrpcConnection`, which
  speaks HTTP/2 on the same event loop (no second server, no byte pump).

A connection that has not sent enough bytes to decide within ``SNIFF_TIMEOUT`` is closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("ordertasks.emulator.frontdoor")
ProtocolFactory = Callable[[], Any]
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SNIFF_TIMEOUT = 10.0


def classify(head: bytes) -> str | None:
    """``"grpc"``, ``"rest"``, or ``None`` while ``head`` is still a prefix of the preface."""
    if head[:len(PREFACE)] == PREFACE[:len(head)]:
        return "grpc" if len(head) >= len(PREFACE) else None
    return "rest"


class Sniffer(asyncio.Protocol):
    """The protocol of every accepted connection until it knows which transport it carries."""

    def __init__(self, rest_factory: ProtocolFactory, grpc_factory: ProtocolFactory) -> None:
        self.rest_factory, self.grpc_factory = rest_factory, grpc_factory
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
        self._hand_over(self.rest_factory if kind == "rest" else self.grpc_factory)

    def connection_lost(self, exc: Exception | None) -> None:
        """The client left before deciding."""
        if self.timer is not None:
            self.timer.cancel()

    def _hand_over(self, factory: ProtocolFactory) -> None:
        """Switch the connection to the transport's protocol and replay the bytes read so far."""
        assert self.transport is not None
        protocol = factory()
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        protocol.data_received(self.head)


def sniffer_factory(rest_factory: ProtocolFactory, grpc_factory: ProtocolFactory) -> Callable[[], Sniffer]:
    """The protocol factory for ``loop.create_server``."""
    return lambda: Sniffer(rest_factory, grpc_factory)
