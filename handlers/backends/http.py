"""``WebhookClient`` over HTTP: one POST per call that a far end cannot turn against us.

Every webhook kind (the warehouse notification is one) goes through this one client.
Status mapping:

    2xx                      → done: {"status", "reference"} (the far end's "id", if it sent one)
    409                      → done: the far end already has this Idempotency-Key
    3xx                      → Rejected, naming the redirect's target (redacted): never followed
    429                      → Throttled(retry_after from Retry-After: seconds or HTTP-date)
    other 4xx                → Rejected (status + the first 500 bytes of the answer)
    5xx, timeout, connection → DependencyUnavailable
    address refused          → Rejected (in the cloud: the host resolved to a non-public address)

A far end is untrusted (its answers, redirects, sizes and timing), so every call:

- **never follows a redirect**: a 307 re-POSTs the order's name, email and address to
  wherever it points, another host or our own checkout's cancel endpoint;
- **reads at most** ``max_answer_bytes`` of the answer (default 64 KiB), then drops the
  connection; a 2xx answer cut short is still done (its status says so) and the result
  carries ``"answer_truncated": True``;
- **runs under one deadline**: ``timeout`` seconds from the start of the call to the last
  byte, on a monotonic clock. Every connect, send and receive waits at most the time left,
  so an answer dripped a byte a second ends at the deadline (``DependencyUnavailable``)
  instead of a per-read timeout that each byte restarts;
- **connects to the address it checked**: the host is resolved once, every address goes
  through the ``AddressPolicy`` (in the cloud: public addresses only, unless the catalog
  allows), and the socket connects to a checked address itself, sending the original
  ``Host`` header and TLS server name. A DNS answer that changes between the check and the
  connect (rebinding) cannot move the call;
- **says nothing secret**: every message it raises is redacted (its token, the URL's query
  string and userinfo; ``handlers/redact.py``).

Each call opens its own connection (no pool), so the address check runs on every call; proxy
variables (``HTTPS_PROXY``) are not used. Name resolution itself is bounded by the system
resolver's own timeouts, not by ``timeout``.
"""

from __future__ import annotations

import base64
import functools
import http.client
import io
import json
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any, cast
from urllib.parse import unquote, urljoin, urlsplit

import certifi

from ordertasks.handlers.addresses import AddressPolicy, Resolved, resolve
from ordertasks.handlers.errors import ConfigurationError, DependencyUnavailable, Rejected, Throttled
from ordertasks.handlers.kind import SystemClock
from ordertasks.handlers.ports import Clock
from ordertasks.handlers.redact import redact, redact_url, unsendable

EXCERPT_BYTES = 500
DEFAULT_MAX_ANSWER_BYTES = 64 * 1024
READ_CHUNK = 16 * 1024
USER_AGENT = "ordertasks-webhook"
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Target:
    """Where a webhook POSTs, parsed once from its URL (userinfo becomes Basic credentials)."""

    scheme: str
    host: str
    port: int
    path: str
    basic_auth: str | None = None

    @classmethod
    def parse(cls, url: str) -> "Target":
        """``Target`` of an ``http(s)://`` URL; ``ConfigurationError`` (redacted) when it has no host."""
        parts = urlsplit(url)
        try:
            port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
            host = (parts.hostname or "").encode("idna").decode("ascii")
        except (ValueError, UnicodeError):
            port, host = 0, ""
        if parts.scheme not in DEFAULT_PORTS or not host or not port:
            raise ConfigurationError(f"webhook url {redact_url(url)[:200]!r} must be http(s)://host[:port]/path")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        credentials = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        basic = base64.b64encode(credentials.encode()).decode() if parts.username is not None else None
        return cls(parts.scheme, host, port, path, basic)

    @property
    def host_header(self) -> str:
        """The ``Host`` header: the URL's host (bracketed if IPv6) and its port unless the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


@dataclass(frozen=True)
class Answer:
    """What the far end answered, read up to the cap."""

    status: int
    headers: Message
    body: bytes
    truncated: bool


class Deadline:
    """One call's time budget on a monotonic clock."""

    def __init__(self, seconds: float, monotonic: Callable[[], float]) -> None:
        self.monotonic = monotonic
        self.ends = monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left; ``TimeoutError`` once none are."""
        left = self.ends - self.monotonic()
        if left <= 0:
            raise TimeoutError("the call's deadline passed")
        return left


class _DeadlineReader(io.RawIOBase):
    """The socket as ``http.client`` reads it: every receive waits at most the time left."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        self.sock, self.deadline = sock, deadline

    def readable(self) -> bool:
        """Always: this is the receiving side."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Receive into ``buffer`` before the deadline (``TimeoutError`` after it)."""
        self.sock.settimeout(self.deadline.remaining())
        return self.sock.recv_into(buffer)


class _DeadlineSocket:
    """What ``http.client`` is given as its socket: sends and receives bounded by the deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self.sock, self.deadline = sock, deadline

    def sendall(self, data: bytes) -> None:
        """Send all of ``data`` before the deadline."""
        self.sock.settimeout(self.deadline.remaining())
        self.sock.sendall(data)

    def makefile(self, mode: str) -> io.BufferedReader:
        """The answer's byte stream."""
        return io.BufferedReader(_DeadlineReader(self.sock, self.deadline))

    def close(self) -> None:
        """Nothing: ``http.client`` closes its socket on ``Connection: close`` before the body is
        read; the call closes the real socket when it is done with the answer."""


class HttpWebhookClient:
    """POST a kind's data as JSON to ``url`` (``name`` says whose endpoint it is in messages).

    ``addresses`` decides which resolved addresses may be called (default: any, as locally;
    the handler's wiring passes the cloud's policy); ``tls`` replaces the default trust store.
    """

    def __init__(self, url: str, timeout: float, token: str | None = None, *, clock: Clock | None = None,
                 name: str = "webhook", max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
                 addresses: AddressPolicy | None = None, tls: ssl.SSLContext | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        problem = unsendable(token) if token else None
        if problem:
            raise ConfigurationError(f"the {name} webhook's token {problem}: a token is sent in an HTTP "
                                     "header; store it as one line without surrounding white space")
        self.url, self.timeout, self.token, self.name = url, timeout, token, name
        self.target = Target.parse(url)
        self.shown_url = redact_url(url)
        self.max_answer_bytes = max_answer_bytes
        self.addresses = addresses or AddressPolicy()
        self.tls = tls
        self.clock = clock or SystemClock()
        self.monotonic = monotonic
        self.secrets = (token, unquote(urlsplit(url).password or ""))

    def post(self, idempotency_key: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST ``payload`` as JSON with ``Idempotency-Key``; see the module docstring for outcomes."""
        body = json.dumps(payload, allow_nan=False).encode("utf-8")
        deadline = Deadline(self.timeout, self.monotonic)
        try:
            answer = self._exchange(body, self._headers(idempotency_key), deadline)
        except TimeoutError as exc:
            raise DependencyUnavailable(f"{self.name} {self.shown_url} did not answer within {self.timeout}s") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise DependencyUnavailable(self._say(f"{self.name} {self.shown_url} unreachable: {exc}")) from exc
        return self._result(answer)

    notify = post  # the warehouse client's old method name

    def _headers(self, idempotency_key: str) -> dict[str, str]:
        headers = {"Host": self.target.host_header, "Idempotency-Key": idempotency_key,
                   "Content-Type": "application/json", "User-Agent": USER_AGENT, "Connection": "close"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.target.basic_auth:
            headers["Authorization"] = f"Basic {self.target.basic_auth}"
        return headers

    def _exchange(self, body: bytes, headers: dict[str, str], deadline: Deadline) -> Answer:
        """Connect, send, and read the answer up to the cap, all before ``deadline``."""
        sock = self._open(deadline)
        try:
            connection = http.client.HTTPConnection(self.target.host, self.target.port)
            # A socket already set means http.client never connects (nor resolves) by itself.
            connection.sock = cast(socket.socket, _DeadlineSocket(sock, deadline))
            connection.request("POST", self.target.path, body=body, headers=headers)
            response = connection.getresponse()
            content, truncated = _read_capped(response, self.max_answer_bytes)
            return Answer(response.status, response.headers, content, truncated)
        finally:
            sock.close()

    def _open(self, deadline: Deadline) -> socket.socket:
        """A connected socket (TLS-wrapped for https) to a checked address of the target."""
        sock = self._connect(self._allowed(resolve(self.target.host, self.target.port)), deadline)
        if self.target.scheme != "https":
            return sock
        try:
            sock.settimeout(deadline.remaining())  # the handshake as a whole waits at most this
            return (self.tls or default_tls()).wrap_socket(sock, server_hostname=self.target.host)
        except BaseException:
            sock.close()
            raise

    def _allowed(self, found: list[Resolved]) -> list[Resolved]:
        """The resolved addresses the policy allows; ``Rejected`` naming the first refused when none is."""
        allowed = [r for r in found if self.addresses.refusal(r.address) is None]
        if allowed or not found:
            return allowed
        first = found[0].address
        raise Rejected(self._say(
            f"{self.name} {self.shown_url}: {self.target.host} resolves to {first} "
            f"({self.addresses.refusal(first)}), which the handler does not call in the cloud; if that "
            "network is yours, allow it in the kind's [kinds.NAME.webhook] table (allow_private)"))

    @staticmethod
    def _connect(addresses: list[Resolved], deadline: Deadline) -> socket.socket:
        """A TCP connection to the first of ``addresses`` that accepts one before the deadline."""
        failure: OSError = OSError("the host resolved to no address")
        for candidate in addresses:
            sock = socket.socket(candidate.family, socket.SOCK_STREAM)
            try:
                sock.settimeout(deadline.remaining())
                sock.connect(candidate.sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                failure = exc
        raise failure

    def _result(self, answer: Answer) -> dict[str, Any]:
        status = answer.status
        if 200 <= status < 300 or status == 409:
            result: dict[str, Any] = {"status": status, "reference": _reference(answer)}
            result |= {"already_received": True} if status == 409 else {}
            return result | ({"answer_truncated": True} if answer.truncated else {})
        if 300 <= status < 400:
            raise Rejected(self._redirect(answer))
        if status == 429:
            retry_after = retry_after_seconds(answer.headers.get("Retry-After"), self.clock.now())
            raise Throttled(f"{self.name} {self.shown_url} answered 429 Too Many Requests", retry_after=retry_after)
        if 400 <= status < 500:
            raise Rejected(self._say(f"{self.name} {self.shown_url} refused the request with {status}: "
                                     f"{_excerpt(answer)}"))
        raise DependencyUnavailable(self._say(f"{self.name} {self.shown_url} answered {status}: {_excerpt(answer)}"))

    def _redirect(self, answer: Answer) -> str:
        """The message of a redirect: where it pointed (redacted), and that it was not followed."""
        location = answer.headers.get("Location")
        where = redact_url(urljoin(self.url, location.strip()))[:300] if location else "nowhere (no Location)"
        return self._say(f"{self.name} {self.shown_url} answered {answer.status} redirecting to {where}: "
                         "redirects are never followed; set the webhook's url to the address that answers")

    def _say(self, message: str) -> str:
        """``message`` with this client's secrets and every URL's query and userinfo redacted."""
        return redact(message, self.secrets)


HttpWarehouseClient = HttpWebhookClient


@functools.cache
def default_tls() -> ssl.SSLContext:
    """Certificate and host name checks against certifi's roots: the trust store requests used."""
    return ssl.create_default_context(cafile=certifi.where())


def _read_capped(response: http.client.HTTPResponse, cap: int) -> tuple[bytes, bool]:
    """At most ``cap`` bytes of the answer, and whether it had more."""
    chunks: list[bytes] = []
    size = 0
    while size <= cap:
        chunk = response.read(min(READ_CHUNK, cap + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    content = b"".join(chunks)
    return content[:cap], size > cap


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())


def _reference(answer: Answer) -> str | None:
    """The far end's id for the notification, when the (whole) body is JSON with ``id``."""
    if answer.truncated:
        return None
    try:
        body = json.loads(answer.body)
    except ValueError:
        return None
    ref = body.get("id") if isinstance(body, dict) else None
    return str(ref) if ref is not None else None


def _excerpt(answer: Answer) -> str:
    """The first 500 bytes of the answer, white space folded (enough to see why it refused)."""
    head = answer.body[:EXCERPT_BYTES].decode("utf-8", errors="replace")
    text = " ".join(head.split())
    return text + ("…" if len(answer.body) > EXCERPT_BYTES or answer.truncated else "")
