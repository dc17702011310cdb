"""The webhook client's transport against real servers on loopback: redirects, the answer cap,
the one deadline, the Host header and TLS name, credentials from the URL, redacted messages."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ordertasks.handlers.backends.http import HttpWebhookClient
from ordertasks.handlers.errors import ConfigurationError, DependencyUnavailable, Rejected
from tests.effects.conftest import Reply, TlsPair, Warehouse

KEY = "A1001:notify_warehouse"
PAYLOAD = {"order_id": "A1001"}


@pytest.fixture
def elsewhere() -> Iterator[Warehouse]:
    """A second far end: where a redirect points. It must never see a request."""
    other = Warehouse()
    other.thread.start()
    try:
        yield other
    finally:
        other.server.shutdown()
        other.server.server_close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_rejected_naming_its_target_and_never_followed(status: int, warehouse: Warehouse,
                                                                      elsewhere: Warehouse) -> None:
    warehouse.reply = Reply(status=status, body=b"", headers={"Location": elsewhere.url + "?api_key=SECRET-1"})
    with pytest.raises(Rejected) as caught:
        warehouse.client().post(KEY, PAYLOAD)
    message = str(caught.value)
    assert f"answered {status} redirecting to {elsewhere.url}?[redacted]" in message
    assert "SECRET-1" not in message and "never followed" in message
    assert len(warehouse.requests) == 1 and elsewhere.requests == []


def test_a_relative_redirect_is_named_as_the_absolute_address(warehouse: Warehouse) -> None:
    warehouse.reply = Reply(status=307, body=b"", headers={"Location": "/api/orders/A1001/cancel"})
    with pytest.raises(Rejected, match=r"redirecting to http://127\.0\.0\.1:\d+/api/orders/A1001/cancel"):
        warehouse.client().post(KEY, PAYLOAD)


def test_an_answer_over_the_cap_is_cut_there_and_a_2xx_stays_done(warehouse: Warehouse) -> None:
    warehouse.reply = Reply(status=201, body=b'{"id": "WH-9", "pad": "' + b"x" * 5000 + b'"}')
    result = warehouse.client(max_answer_bytes=1024).post(KEY, PAYLOAD)
    assert result == {"status": 201, "reference": None, "answer_truncated": True}
    assert warehouse.client(max_answer_bytes=8192).post(KEY, PAYLOAD) == {"status": 201, "reference": "WH-9"}


def test_a_4xx_excerpt_never_repeats_the_token(warehouse: Warehouse) -> None:
    warehouse.reply = Reply(status=401, body=b'{"error": "bad credentials: Bearer tok-ABCDEF-123 (token tok-ABCDEF-123)"}')
    with pytest.raises(Rejected) as caught:
        warehouse.client(token="tok-ABCDEF-123").post(KEY, PAYLOAD)
    assert "401" in str(caught.value) and "tok-ABCDEF-123" not in str(caught.value)


def test_the_host_header_is_the_urls_host_not_the_address(warehouse: Warehouse) -> None:
    port = warehouse.server.server_address[1]
    HttpWebhookClient(f"http://localhost:{port}/v1/notifications", timeout=2).post(KEY, PAYLOAD)
    assert warehouse.requests[0].headers["Host"] == f"localhost:{port}"


def test_userinfo_in_the_url_is_sent_as_basic_auth_and_never_shown(warehouse: Warehouse) -> None:
    port = warehouse.server.server_address[1]
    client = HttpWebhookClient(f"http://ops:pa55-XYZ@127.0.0.1:{port}/v1/notifications?api_key=K-77", timeout=2)
    client.post(KEY, PAYLOAD)
    [request] = warehouse.requests
    assert request.headers["Authorization"] == "Basic b3BzOnBhNTUtWFla"   # ops:pa55-XYZ
    assert request.path == "/v1/notifications?api_key=K-77"
    warehouse.reply = Reply(status=500, body=b"down")
    with pytest.raises(DependencyUnavailable) as caught:
        client.post(KEY, PAYLOAD)
    assert "pa55-XYZ" not in str(caught.value) and "K-77" not in str(caught.value)
    assert "http://[redacted]@127.0.0.1" in str(caught.value)


@pytest.mark.parametrize("token", ["tok-123\n", "tok-123\r\n", "tok\x00123", " tok-123"])
def test_a_token_that_cannot_be_a_header_is_refused_without_quoting_it(token: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        HttpWebhookClient("http://127.0.0.1:9/", timeout=1, token=token, name="crm")
    assert "crm webhook's token" in str(caught.value) and "tok" not in str(caught.value).replace("token", "")


# --- TLS: connect to the checked address, verify the URL's host ----------------------------------


class _Accepting(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(201)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass


@pytest.fixture
def tls_server(tls_pair: TlsPair) -> Iterator[int]:
    """An HTTPS server on 127.0.0.1 whose certificate names 127.0.0.1 only."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Accepting)
    server.socket = tls_pair.server.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_https_verifies_the_urls_host_on_the_address_it_connected_to(tls_server: int, tls_pair: TlsPair) -> None:
    ok = HttpWebhookClient(f"https://127.0.0.1:{tls_server}/hook", timeout=2, tls=tls_pair.client)
    assert ok.post(KEY, PAYLOAD)["status"] == 201
    # Same address, other name: the certificate is checked against the URL's host, not the IP.
    wrong = HttpWebhookClient(f"https://localhost:{tls_server}/hook", timeout=2, tls=tls_pair.client)
    with pytest.raises(DependencyUnavailable, match="certificate"):
        wrong.post(KEY, PAYLOAD)


def test_the_default_trust_store_refuses_a_self_signed_far_end(tls_server: int) -> None:
    with pytest.raises(DependencyUnavailable, match="certificate"):
        HttpWebhookClient(f"https://127.0.0.1:{tls_server}/hook", timeout=2).post(KEY, PAYLOAD)


# --- one deadline for the whole call ---------------------------------------------------------------


@pytest.fixture
def header_drip() -> Iterator[int]:
    """A raw server that dribbles its status line and headers, 1 byte per 0.2 s, forever-ish."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Pad: " + b"p" * 500:
                if stop.wait(0.2):  # the far end is the slow one here: that is the attack
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        listener.close()


def test_headers_dripped_a_byte_at_a_time_end_at_the_deadline(header_drip: int) -> None:
    client = HttpWebhookClient(f"http://127.0.0.1:{header_drip}/hook", timeout=1)
    started = time.monotonic()
    with pytest.raises(DependencyUnavailable, match="did not answer within 1s"):
        client.post(KEY, PAYLOAD)
    assert time.monotonic() - started < 1.5


def test_the_deadline_comes_from_the_injected_monotonic_clock(warehouse: Warehouse) -> None:
    ticks = iter([0.0, 0.1, 50.0, 50.0, 50.0, 50.0])   # start, connect, then the clock jumps past 10 s
    client = warehouse.client(timeout=10, monotonic=lambda: next(ticks, 99.0))
    with pytest.raises(DependencyUnavailable, match="within 10s"):
        client.post(KEY, PAYLOAD)


def test_tls_context_errors_surface_as_unreachable_not_as_crashes() -> None:
    # A plain-HTTP port spoken to in TLS: the handshake fails, and the message names the target.
    plain = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=lambda: plain.accept()[0].sendall(b"HTTP/1.1 400 Bad\r\n\r\n"), daemon=True).start()
    try:
        client = HttpWebhookClient(f"https://127.0.0.1:{plain.getsockname()[1]}/hook", timeout=2,
                                   tls=ssl.create_default_context())
        with pytest.raises(DependencyUnavailable, match=r"unreachable"):
            client.post(KEY, PAYLOAD)
    finally:
        plain.close()
