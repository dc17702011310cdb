"""Real far ends for the side-effect tests: an SMTP server, an HTTP warehouse, a blob directory."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from ordertasks.handlers.backends.http import HttpWebhookClient
from ordertasks.handlers.backends.localdir import LocalDirBlobStore
from ordertasks.handlers.backends.smtp import SmtpMailer
from ordertasks.handlers.kind import EffectContext
from tests.effects.orders import SELLER, FixedClock
from tests.support.servers import free_port

# --- SMTP ------------------------------------------------------------------------------------


class Inbox:
    """aiosmtpd handler: keeps every message; refuses or defers chosen recipients."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.replies: dict[str, str] = {}      # recipient -> SMTP reply to give instead of 250

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        """Accept the recipient unless a reply is programmed for it."""
        if address in self.replies:
            return self.replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Store the raw message."""
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    """A running aiosmtpd server and what it received."""

    inbox: Inbox
    port: int

    def mailer(self, **options: Any) -> SmtpMailer:
        """An ``SmtpMailer`` pointed at this server."""
        return SmtpMailer("127.0.0.1", self.port, timeout=options.pop("timeout", 5), **options)


def _start_smtp(**smtp_options: Any) -> tuple[Controller, SmtpServer]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **smtp_options)
    controller.start()
    return controller, SmtpServer(inbox, port)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain SMTP server on a free loopback port."""
    controller, server = _start_smtp()
    try:
        yield server
    finally:
        controller.stop()


@dataclass(frozen=True)
class TlsPair:
    """A self-signed certificate for 127.0.0.1: the server's context and a client that trusts it."""

    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="session")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> TlsPair:
    """Mint a throwaway certificate with ``cryptography``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    return TlsPair(server=server, client=ssl.create_default_context(cafile=str(cert_path)))


@pytest.fixture
def starttls_server(tls_pair: TlsPair) -> Iterator[SmtpServer]:
    """An SMTP server that insists on STARTTLS before MAIL FROM."""
    controller, server = _start_smtp(tls_context=tls_pair.server, require_starttls=True)
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def smtps_server(tls_pair: TlsPair) -> Iterator[SmtpServer]:
    """An SMTP server speaking TLS from the first byte (implicit TLS, as on port 465)."""
    controller, server = _start_smtp(ssl_context=tls_pair.server)
    try:
        yield server
    finally:
        controller.stop()


# --- HTTP warehouse ----------------------------------------------------------------------------


@dataclass
class Reply:
    """What the fake warehouse answers next."""

    status: int = 201
    body: bytes = b'{"id": "WH-1"}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    """One request as the warehouse saw it."""

    path: str
    headers: dict[str, str]
    body: Any


class Warehouse:
    """A ``ThreadingHTTPServer`` in a thread whose replies the test programs."""

    def __init__(self) -> None:
        self.reply = Reply()
        self.requests: list[Received] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/notifications"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        warehouse = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                warehouse.requests.append(Received(self.path, dict(self.headers.items()), body))
                warehouse._answer(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
                pass

        return Handler

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        reply = self.reply
        if reply.delay:
            # The server is the slow far end here; the client under test must give up first.
            time.sleep(reply.delay)
        handler.send_response(reply.status)
        for name, value in {"Content-Type": "application/json", **reply.headers}.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        try:
            handler.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client under test already gave up (timeout tests)

    def client(self, timeout: float = 2.0, **options: Any) -> HttpWebhookClient:
        """An ``HttpWebhookClient`` for this server."""
        return HttpWebhookClient(self.url, timeout=timeout, **options)


@pytest.fixture
def warehouse() -> Iterator[Warehouse]:
    """A programmable warehouse API on a free loopback port."""
    wh = Warehouse()
    wh.thread.start()
    try:
        yield wh
    finally:
        wh.server.shutdown()
        wh.server.server_close()


# --- effect context ----------------------------------------------------------------------------


class NoAnalyticsStore:
    """Stands in where a test does not exercise analytics; any use is a test bug."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"this test's EffectContext has no analytics store (called {name})")


@pytest.fixture
def clock() -> FixedClock:
    """2024-03-02 09:00 UTC, forever."""
    return FixedClock()


@pytest.fixture
def make_context(tmp_path: Path, clock: FixedClock) -> Callable[..., EffectContext]:
    """Build an ``EffectContext`` of real adapters; override any part by keyword."""
    def build(**parts: Any) -> EffectContext:
        warehouse = parts.pop("warehouse", None) or HttpWebhookClient(f"http://127.0.0.1:{free_port()}/", timeout=1)
        defaults: dict[str, Any] = {
            "mailer": SmtpMailer("127.0.0.1", free_port(), timeout=1),
            "webhooks": {"notify_warehouse": warehouse},
            "blobs": LocalDirBlobStore(tmp_path / "blobs"), "analytics": NoAnalyticsStore(),
            "clock": clock, "seller": SELLER, "analytics_shards": 8}
        return EffectContext(**(defaults | parts))
    return build
