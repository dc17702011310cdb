"""The dev stack's SMTP sink (``infra.mailsink``): a real aiosmtpd server writing ``.eml`` files
whose names start with the order id (``ls var/mail/ord_gjm6*``) and never collide."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from ordertasks.handlers import mail as order_email
from ordertasks.handlers.backends.smtp import SmtpMailer
from ordertasks.handlers.kinds.request_review import WORDING as REVIEW
from ordertasks.handlers.kinds.send_confirmation_email import WORDING as CONFIRMATION
from ordertasks.infra.mailsink import MailSink, eml_name
from tests.effects.orders import SELLER, eur_order, task_for
from tests.support.servers import free_port

ORDER_ID = "ord_gjm62k4q7w3xh5mrtb2a"


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[MailSink, SmtpMailer, Path]]:
    """The sink writing into a temporary directory, and a mailer pointed at it."""
    port, directory = free_port(), tmp_path / "mail"
    server = MailSink(port=port, directory=directory).start()
    mailer = SmtpMailer("127.0.0.1", port, timeout=5)
    try:
        yield server, mailer, directory
    finally:
        mailer.close()
        server.stop()


def _email(wording: order_email.Wording, kind: str, order_id: str = ORDER_ID) -> EmailMessage:
    return order_email.render_email(wording, kind, order_id, task_for(kind, order_id, eur_order()).data, SELLER)


def test_eml_names_start_with_the_order_id_and_never_collide(sink: tuple[MailSink, SmtpMailer, Path]) -> None:
    _, mailer, directory = sink
    confirmation = _email(CONFIRMATION, "send_confirmation_email")
    other_order = _email(CONFIRMATION, "send_confirmation_email", "A1001")
    for msg in (confirmation, confirmation, _email(REVIEW, "request_review"), other_order):
        mailer.send(msg)
    names = sorted(path.name for path in directory.glob("*.eml"))
    assert len(names) == 4                      # the resend is a second file, as an inbox shows it
    assert sorted(path.name for path in directory.glob(f"{ORDER_ID}-*.eml")) == [n for n in names if "ord_" in n]
    assert len([n for n in names if n.startswith(f"{ORDER_ID}-")]) == 3
    assert [n for n in names if n.startswith("A1001-")]
    assert all(n.endswith(".eml") and n.count("-") >= 2 for n in names)


@pytest.mark.parametrize("header", [None, "../../etc/passwd", "ord 1", "__x__", "x" * 65])
def test_a_message_without_a_usable_order_id_is_named_no_order(header: str | None) -> None:
    msg = EmailMessage()
    msg["Message-ID"] = "<a@b.c>"
    if header is not None:
        msg["X-Ordertasks-Order"] = header
    name = eml_name(msg.as_bytes(), 123)
    assert name.startswith("no-order-123-") and "/" not in name and name.endswith(".eml")


def test_the_name_comes_from_the_headers_alone() -> None:
    raw = _email(CONFIRMATION, "send_confirmation_email").as_bytes()
    first, again = eml_name(raw, 1), eml_name(raw, 2)
    assert first.startswith(f"{ORDER_ID}-1-") and again.startswith(f"{ORDER_ID}-2-")
    assert first.split("-")[-1] == again.split("-")[-1]               # the Message-ID hash
