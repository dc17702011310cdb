"""``Mailer`` over SMTP (smtplib), reusing idle connections.

A connection (TCP, EHLO, STARTTLS or TLS, login) costs more CPU and round trips than the
message it carries, so a sent message's connection is kept for the next one: at most
``max_idle`` idle connections, each reused only within ``idle_seconds`` of its last use
(relays drop idle sessions after a minute or so) and only after a ``NOOP`` shows it alive.
A connection that saw any error is closed, never reused; nothing is retried on another
connection here (a message whose DATA may have reached the relay is not sent twice by us;
the task's retry does that, with the same ``Message-ID``). ``idle_seconds=0`` turns reuse off.

Error mapping (SMTP reply classes, RFC 5321 §4.2.1):

- connection refused, timeout, TLS failure, server hung up, any 4xx reply → ``DependencyUnavailable``
- 5xx reply (recipient or sender refused, message rejected, login refused) → ``Rejected``
"""

from __future__ import annotations

import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage

from ordertasks.handlers.errors import DependencyUnavailable, Rejected
from ordertasks.handlers.mailheaders import CheckedWire


class SmtpMailer:
    """Send ``EmailMessage``s through an SMTP relay, optionally over TLS and with login.

    ``starttls`` upgrades a plain connection (submission, port 587); ``implicit_tls`` speaks
    TLS from the first byte (SMTPS, port 465). Either verifies the relay's certificate.
    """

    def __init__(self, host: str, port: int, username: str | None = None, password: str | None = None,
                 starttls: bool = False, timeout: float = 10, ssl_context: ssl.SSLContext | None = None,
                 implicit_tls: bool = False, idle_seconds: float = 20.0, max_idle: int = 4,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.username, self.password, self.starttls = username, password, starttls and not implicit_tls
        self.ssl_context, self.implicit_tls = ssl_context, implicit_tls
        self.idle_seconds, self.max_idle, self._monotonic = idle_seconds, max_idle, monotonic
        self._idle: list[tuple[smtplib.SMTP, float]] = []     # (connection, last used), newest last
        self._lock = threading.Lock()

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` to its ``To`` recipients.

        Raises ``DependencyUnavailable`` when the relay is unreachable or answers 4xx,
        ``Rejected`` when it refuses for good (5xx).
        """
        smtp: smtplib.SMTP | None = None
        try:
            smtp = self._session()
            _transmit(smtp, message)
        except BaseException as exc:
            _close(smtp)                    # whatever failed, this session is not reused
            if isinstance(exc, (smtplib.SMTPException, OSError)):
                raise self._error(exc) from exc
            raise
        self._keep(smtp)

    def _error(self, exc: smtplib.SMTPException | OSError) -> DependencyUnavailable | Rejected:
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            return _recipients_error(exc)
        if isinstance(exc, smtplib.SMTPResponseException):
            return _reply_error(exc.smtp_code, exc.smtp_error, "the relay")
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return Rejected(f"SMTP relay {self.host}:{self.port} lacks an extension this message needs ({exc}): "
                            "STARTTLS when starttls is on, SMTPUTF8 for non-ASCII addresses; "
                            "change the setting or use a relay that supports it")
        # SMTPServerDisconnected, refused connections, timeouts and TLS errors land here.
        return DependencyUnavailable(f"SMTP relay {self.host}:{self.port} unavailable: {exc!r}")

    def _session(self) -> smtplib.SMTP:
        """A live idle connection, or a new one with its session opened."""
        reused = self._reusable()
        if reused is not None:
            return reused
        smtp = self._connect()
        try:
            self._open_session(smtp)
        except BaseException:
            _close(smtp)
            raise
        return smtp

    def _reusable(self) -> smtplib.SMTP | None:
        while (candidate := self._take_idle()) is not None:
            try:
                if candidate.noop()[0] == 250:
                    return candidate
            except (smtplib.SMTPException, OSError):
                pass                        # the relay dropped it: try the next, or open one
            _close(candidate)
        return None

    def _take_idle(self) -> smtplib.SMTP | None:
        now = self._monotonic()
        with self._lock:
            while self._idle:
                smtp, used = self._idle.pop()
                if now - used <= self.idle_seconds:
                    return smtp
                _close(smtp)
        return None

    def _keep(self, smtp: smtplib.SMTP) -> None:
        with self._lock:
            if self.idle_seconds > 0 and len(self._idle) < self.max_idle:
                self._idle.append((smtp, self._monotonic()))
                return
        _quit(smtp)

    def close(self) -> None:
        """Say QUIT on the idle connections and close them (a later ``send`` opens new ones)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for smtp, _ in idle:
            _quit(smtp)

    def _connect(self) -> smtplib.SMTP:
        if self.implicit_tls:
            context = self.ssl_context or ssl.create_default_context()
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)

    def _open_session(self, smtp: smtplib.SMTP) -> None:
        if self.starttls:
            smtp.starttls(context=self.ssl_context or ssl.create_default_context())
            smtp.ehlo()
        if self.username:
            smtp.login(self.username, self.password or "")


def _transmit(smtp: smtplib.SMTP, message: EmailMessage) -> None:
    """Send ``message``: what its header check verified, as it was (``handlers.mail.CheckedEmail``),
    else serialised by smtplib."""
    checked = getattr(message, "checked", None)
    if not isinstance(checked, CheckedWire) or not all(a.isascii() for a in (checked.sender, *checked.recipients)):
        smtp.send_message(message)         # also negotiates SMTPUTF8 where an address needs it
        return
    smtp.sendmail(checked.sender, list(checked.recipients), checked.data)


def _close(smtp: smtplib.SMTP | None) -> None:
    """Drop a connection without a word (it failed, or it is stale)."""
    if smtp is not None:
        smtp.close()


def _quit(smtp: smtplib.SMTP) -> None:
    """End a healthy session politely; a relay that already left is fine too."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _reply_error(code: int, text: bytes | str, who: str) -> DependencyUnavailable | Rejected:
    reply = text.decode(errors="replace") if isinstance(text, bytes) else text
    if 400 <= code < 500:
        return DependencyUnavailable(f"SMTP {who} answered {code} (temporary): {reply[:200]}")
    return Rejected(f"SMTP {who} refused with {code}: {reply[:200]}")


def _recipients_error(exc: smtplib.SMTPRecipientsRefused) -> DependencyUnavailable | Rejected:
    # If any refusal is temporary, a retry may succeed: report that one first.
    replies = sorted(exc.recipients.items(), key=lambda reply: not 400 <= reply[1][0] < 500)
    rcpt, (code, text) = replies[0]
    return _reply_error(code, text, f"relay, for recipient {rcpt},")
