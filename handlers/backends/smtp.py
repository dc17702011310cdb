"""``Mailer`` over SMTP (smtplib): one connection per message, nothing shared between calls.

Error mapping (SMTP reply classes, RFC 5321 §4.2.1):

- connection refused, timeout, TLS failure, server hung up, any 4xx reply → ``DependencyUnavailable``
- 5xx reply (recipient or sender refused, message rejected, login refused) → ``Rejected``
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from handlers.errors import DependencyUnavailable, Rejected


class SmtpMailer:
    """Send ``EmailMessage``s through an SMTP relay, optionally over TLS and with login.

    ``starttls`` upgrades a plain connection (submission, port 587); ``implicit_tls`` speaks
    TLS from the first byte (SMTPS, port 465). Either verifies the relay's certificate.
    """

    def __init__(self, host: str, port: int, username: str | None = None, password: str | None = None,
                 starttls: bool = False, timeout: float = 10, ssl_context: ssl.SSLContext | None = None,
                 implicit_tls: bool = False) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.username, self.password, self.starttls = username, password, starttls and not implicit_tls
        self.ssl_context, self.implicit_tls = ssl_context, implicit_tls

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` to its ``To`` recipients.

        Raises ``DependencyUnavailable`` when the relay is unreachable or answers 4xx,
        ``Rejected`` when it refuses for good (5xx).
        """
        try:
            with self._connect() as smtp:
                self._open_session(smtp)
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise _recipients_error(exc) from exc
        except smtplib.SMTPResponseException as exc:
            raise _reply_error(exc.smtp_code, exc.smtp_error, "the relay") from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise Rejected(f"SMTP relay {self.host}:{self.port} lacks an extension this message needs ({exc}): "
                           "STARTTLS when starttls is on, SMTPUTF8 for non-ASCII addresses; "
                           "change the setting or use a relay that supports it") from exc
        except (smtplib.SMTPException, OSError) as exc:
            # SMTPServerDisconnected, refused connections, timeouts and TLS errors land here.
            raise DependencyUnavailable(f"SMTP relay {self.host}:{self.port} unavailable: {exc!r}") from exc

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
