"""The benchmarks' paced load generator counts latency from when a request was due, so a
server that falls behind shows the queueing it causes (no coordinated omission)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from benchmarks._loadgen import constant, run_paced

SERVICE_SECONDS = 0.02     # the test server's own time per request (one request at a time)


class _Slow(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        """Quiet."""

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(SERVICE_SECONDS)          # the service time being measured, not a wait for work
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def slow_server() -> Iterator[str]:
    """A single-threaded HTTP server that takes SERVICE_SECONDS per request."""
    server = HTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_queueing_behind_a_slow_server_shows_in_the_latencies(slow_server: str) -> None:
    """100 requests/s due for 0.5 s against a server that serves at most 50/s: the last ones
    wait about half a second past their due time, far more than one service time."""
    result = run_paced(slow_server, constant(b"{}"), concurrency=1, rate=100, duration=0.5)
    assert set(result.statuses) == {200} and len(result.latencies_ms) == 50
    assert max(result.latencies_ms) > 10 * SERVICE_SECONDS * 1000
    assert result.latencies_ms[-1] > result.latencies_ms[0]


def test_requests_are_sent_at_the_rate_not_back_to_back(slow_server: str) -> None:
    """At 10/s for 0.5 s exactly the five due requests are sent, though the server could take more."""
    result = run_paced(slow_server, constant(b"{}"), concurrency=4, rate=10, duration=0.5)
    assert len(result.latencies_ms) == 5 and result.errors == 0
