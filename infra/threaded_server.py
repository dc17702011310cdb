"""A stand-in HTTP server on loopback, served from a daemon thread: the shape the dev stack's
small servers (the warehouse stand-in, the trace receiver) share."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

Self = TypeVar("Self", bound="ThreadedServer")


class ThreadedServer:
    """``handler`` served on ``host:port`` (port 0: a free one) in a background thread."""

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8090``."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self: Self) -> Self:
        """Serve in a daemon thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()
