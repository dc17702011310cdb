"""localstripe (a stateful Stripe stand-in) on a free port, and a recording proxy in front of it.

localstripe does not implement ``Idempotency-Key``, so the proxy records every request the
``stripe`` library sends (method, path, headers) to prove the adapter sends the key, and can
inject failures (a 500, a slow answer) to exercise retries. It forwards to localstripe over
a real socket; nothing in the code under test is replaced.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.servers import ServerProcess, free_port, port_open

SECRET_KEY = "sk_test_ordertasks"


@dataclass
class Recorded:
    """One request the proxy forwarded."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Proxy:
    """A recording, fault-injecting HTTP proxy in front of localstripe."""

    upstream: str
    requests: list[Recorded] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)       # statuses to answer instead of forwarding
    delay_next: list[float] = field(default_factory=list)    # seconds to wait before answering
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"

    def posts(self, path_prefix: str) -> list[Recorded]:
        """The POSTs to paths starting with ``path_prefix``."""
        return [r for r in self.requests if r.method == "POST" and r.path.startswith(path_prefix)]

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        self.requests.append(Recorded(handler.command, handler.path, dict(handler.headers.items()), body))
        if self.delay_next:
            time.sleep(self.delay_next.pop(0))   # a slow processor, as the client sees it
        if self.fail_next:
            self._answer(handler, self.fail_next.pop(0), b'{"error": {"type": "api_error", "message": "injected"}}')
            return
        upstream = requests.request(handler.command, self.upstream + handler.path, data=body, timeout=30,
                                    headers={k: v for k, v in handler.headers.items() if k.lower() != "host"})
        self._answer(handler, upstream.status_code, upstream.content)

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, content: bytes) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(content)))
            handler.end_headers()
            handler.wfile.write(content)
        except (BrokenPipeError, ConnectionResetError):
            pass   # the client gave up (timeout test)


def _handler_for(proxy: Proxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            proxy.handle(self)

        def do_POST(self) -> None:  # noqa: N802
            proxy.handle(self)

        def do_DELETE(self) -> None:  # noqa: N802
            proxy.handle(self)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            return
    return Handler


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``localstripe --port P`` for the session; yields its base URL."""
    binary = Path(sys.executable).with_name("localstripe")
    port = free_port()
    log = tmp_path_factory.mktemp("localstripe") / "localstripe.log"
    # --from-scratch: localstripe otherwise starts from the state another run left in its one
    # fixed pickle file, and fails on a file half-written by a concurrent run.
    server = ServerProcess([str(binary), "--port", str(port), "--from-scratch"], port, log_path=log,
                           ready=lambda: port_open(port))
    server.start(timeout=30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def proxy(localstripe: str) -> Iterator[Proxy]:
    """A fresh recording proxy in front of the session's localstripe."""
    recorder = Proxy(localstripe)
    recorder.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(recorder))
    thread = threading.Thread(target=recorder.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        recorder.server.shutdown()
        recorder.server.server_close()
        thread.join(timeout=10)


def payment_method(localstripe: str, number: str) -> str:
    """A card PaymentMethod id (``pm_…``) on localstripe for a Stripe test card number."""
    resp = requests.post(f"{localstripe}/v1/payment_methods", auth=(SECRET_KEY, ""), timeout=10,
                         data={"type": "card", "card[number]": number, "card[exp_month]": "12",
                               "card[exp_year]": "2034", "card[cvc]": "123"})
    resp.raise_for_status()
    return str(resp.json()["id"])


def stripe_get(localstripe: str, path: str) -> dict[str, Any]:
    """GET a Stripe object from localstripe, as JSON."""
    resp = requests.get(f"{localstripe}{path}", auth=(SECRET_KEY, ""), timeout=10)
    resp.raise_for_status()
    return dict(resp.json())
