"""A forwarding HTTP proxy that can answer the next requests with an error status instead.

Real servers seldom fail on demand: put this between a real client and a real emulator
(fake-gcs-server, say) to see how our code takes a 503, a 429 or a 403 — and that it
recovers once the upstream answers again. Everything not failed is passed through as is.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class FaultProxy:
    """The proxy's state: statuses to answer next (first in, first out) and its URL.

    ``fail_paths`` limits failures to requests whose path starts with one of its prefixes:
    clients also make background calls (the storage client fetches bucket metadata for its
    telemetry) at moments a test cannot predict, and those must not eat a failure.
    """

    upstream: str
    fail_paths: tuple[str, ...] = ("/",)
    fail_next: list[int] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_failure(self, path: str) -> int | None:
        """Pop the next injected status for ``path``, ``None`` when it should pass through."""
        with self.lock:
            return self.fail_next.pop(0) if self.fail_next and path.startswith(self.fail_paths) else None


def _error_body(status: int) -> bytes:
    message = http.client.responses.get(status, "error")
    return json.dumps({"error": {"code": status, "message": message, "errors": [{"message": message}]}}).encode()


class _Handler(BaseHTTPRequestHandler):
    proxy: FaultProxy

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        upstream = urlsplit(self.proxy.upstream)
        conn = http.client.HTTPConnection(upstream.hostname or "127.0.0.1", upstream.port, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        conn.request(self.command, self.path, body=body, headers=headers)
        response = conn.getresponse()
        try:
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = self.proxy.next_failure(self.path)
        if status is not None:
            self._reply(status, [("Content-Type", "application/json")], _error_body(status))
            return
        self._reply(*self._forward(body))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, *args: Any) -> None:
        """Quiet: tests assert on outcomes, not on the proxy's log."""


@contextmanager
def running_fault_proxy(upstream: str, fail_paths: tuple[str, ...] = ("/",)) -> Iterator[FaultProxy]:
    """Serve a ``FaultProxy`` in front of ``upstream`` on a free loopback port."""
    proxy = FaultProxy(upstream, fail_paths)
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"proxy": proxy}))
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
