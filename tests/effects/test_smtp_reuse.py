"""``SmtpMailer`` reuses a live connection for the next message, and only a live, recent,
error-free one. Sessions are counted at a real aiosmtpd server by its EHLOs (smtplib says
EHLO once per connection; a reused one only answers NOOP)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from ordertasks.handlers.backends.smtp import SmtpMailer
from ordertasks.handlers.errors import Rejected
from tests.effects.conftest import Inbox
from tests.support.servers import free_port


class CountingInbox(Inbox):
    """The shared inbox, counting sessions (EHLOs)."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions = 0

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        """Count the session; answer as aiosmtpd would."""
        self.sessions += 1
        session.host_name = hostname
        return responses


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def relay() -> Iterator[tuple[CountingInbox, int]]:
    inbox, port = CountingInbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def message(to: str = "ada@example.com") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "shop@example.com", to, "Your order"
    msg.set_content("Thank you.")
    return msg


def test_consecutive_messages_share_one_session(relay: tuple[CountingInbox, int]) -> None:
    inbox, port = relay
    mailer = SmtpMailer("127.0.0.1", port, timeout=5)
    for _ in range(5):
        mailer.send(message())
    mailer.close()
    assert (len(inbox.messages), inbox.sessions) == (5, 1)


def test_an_idle_connection_is_not_reused_after_idle_seconds(relay: tuple[CountingInbox, int]) -> None:
    inbox, port = relay
    clock = Clock()
    mailer = SmtpMailer("127.0.0.1", port, timeout=5, idle_seconds=20, monotonic=clock)
    mailer.send(message())
    clock.now += 20.5
    mailer.send(message())
    mailer.close()
    assert (len(inbox.messages), inbox.sessions) == (2, 2)


def test_a_connection_the_relay_dropped_is_replaced(relay: tuple[CountingInbox, int]) -> None:
    inbox, port = relay
    mailer = SmtpMailer("127.0.0.1", port, timeout=5)
    mailer.send(message())
    for smtp, _ in mailer._idle:        # the relay's idle timeout, seen from our side: the socket is gone
        smtp.sock.shutdown(socket.SHUT_RDWR)
    mailer.send(message())
    mailer.close()
    assert (len(inbox.messages), inbox.sessions) == (2, 2)


def test_a_session_that_saw_an_error_is_not_reused(relay: tuple[CountingInbox, int]) -> None:
    inbox, port = relay
    inbox.replies["zoe@example.com"] = "550 5.1.1 <zoe@example.com>: no such mailbox"
    mailer = SmtpMailer("127.0.0.1", port, timeout=5)
    with pytest.raises(Rejected, match="550"):
        mailer.send(message("zoe@example.com"))
    mailer.send(message())
    mailer.close()
    assert (len(inbox.messages), inbox.sessions) == (1, 2)


def test_reuse_off_opens_a_session_per_message(relay: tuple[CountingInbox, int]) -> None:
    inbox, port = relay
    mailer = SmtpMailer("127.0.0.1", port, timeout=5, idle_seconds=0)
    for _ in range(3):
        mailer.send(message())
    assert (len(inbox.messages), inbox.sessions) == (3, 3)


def test_concurrent_senders_each_get_their_own_session(relay: tuple[CountingInbox, int]) -> None:
    inbox, port = relay
    mailer = SmtpMailer("127.0.0.1", port, timeout=5, max_idle=4)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: mailer.send(message()), range(40)))
    mailer.close()
    assert len(inbox.messages) == 40
    assert 1 <= inbox.sessions <= 40 and len(mailer._idle) == 0
