"""The certificate fetch itself (``CertCache``'s own HTTP client, the standard library since
issue 33): it reads the issuer's keys and ``max-age`` from a real server, and every way a far
end can misbehave (an error status, an oversized answer, not JSON, a scheme that is not HTTP)
is ``DependencyUnavailable`` naming the URL, never an exception of another kind."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ordertasks.handlers.errors import DependencyUnavailable
from ordertasks.handlers.oidc import MAX_CERTS_BYTES, CertCache
from tests.support.issuer import TestIssuer


class BadEnd:
    """A far end answering every GET with ``status`` and ``body``."""

    def __init__(self, status: int, body: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/certs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def issuer() -> Iterator[TestIssuer]:
    """A real certificates server."""
    served = TestIssuer(audience="https://handler.test/", email="dispatcher@test")
    yield served
    served.stop()


def test_the_keys_and_their_max_age_are_read_from_a_real_server(issuer: TestIssuer) -> None:
    keys, max_age = CertCache(issuer.certs_url)._http_fetch(issuer.certs_url)

    assert list(keys) == [issuer.key.kid] and max_age > 0
    assert len(CertCache(issuer.certs_url).key(issuer.key.kid)) == 1


@pytest.mark.parametrize(("status", "body", "says"), [
    (500, b"{}", "500"),
    (200, b"not json", "cannot fetch OIDC certificates"),
    (200, b" " * (MAX_CERTS_BYTES + 1), "larger than"),
], ids=["error status", "not json", "oversized"])
def test_a_misbehaving_far_end_is_unavailable_naming_the_url(status: int, body: bytes, says: str) -> None:
    end = BadEnd(status, body)
    try:
        with pytest.raises(DependencyUnavailable) as raised:
            CertCache(end.url)._http_fetch(end.url)
    finally:
        end.server.shutdown()

    assert end.url in str(raised.value) and says in str(raised.value)


def test_a_url_that_is_not_http_is_never_opened() -> None:
    with pytest.raises(DependencyUnavailable, match="must be http"):
        CertCache("file:///etc/hostname")._http_fetch("file:///etc/hostname")
