"""Order emails, sent through SmtpMailer to a real aiosmtpd server and parsed back."""

from __future__ import annotations

import importlib
import socket
import threading
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from ordertasks.handlers import mail as order_email
from ordertasks.handlers.backends.smtp import SmtpMailer
from ordertasks.handlers.config import load_catalog
from ordertasks.handlers.errors import DependencyUnavailable, Rejected
from ordertasks.handlers.kind import EffectContext
from ordertasks.handlers.mail import EmailData
from ordertasks.handlers.registry import KindRegistry
from tests.effects.conftest import SmtpServer, TlsPair
from tests.effects.orders import SELLER, eur_order, jpy_order, task_for
from tests.support.servers import free_port


KINDS = KindRegistry.from_catalog(load_catalog())
EMAIL_KINDS = [name for name, k in KINDS.items() if k.model is EmailData]


def _wording(kind: str) -> order_email.Wording:
    wording: order_email.Wording = importlib.import_module(f"handlers.kinds.{kind}").WORDING
    return wording


def _render(kind: str, order_id: str, data: EmailData, seller: object = None) -> EmailMessage:
    return order_email.render_email(_wording(kind), kind, order_id, data, seller or SELLER)  # type: ignore[arg-type]


def _perform(kind: str, task: object, ctx: EffectContext) -> dict[str, str]:
    return KINDS.kind(kind).perform(task, ctx)  # type: ignore[arg-type]


def _received(server: SmtpServer, index: int = -1) -> EmailMessage:
    msg = message_from_bytes(server.inbox.messages[index], policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _parts(msg: EmailMessage) -> tuple[str, str]:
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text is not None and html is not None, "both text/plain and text/html parts must be present"
    return text.get_content(), html.get_content()


def test_confirmation_arrives_with_headers_parts_and_money(smtp_server: SmtpServer,
                                                          make_context: Callable[..., EffectContext]) -> None:
    ctx = make_context(mailer=smtp_server.mailer())
    result = _perform("send_confirmation_email", task_for("send_confirmation_email", "A1001", eur_order()), ctx)

    msg = _received(smtp_server)
    assert msg["Message-ID"] == result["message_id"]
    assert msg["To"].addresses[0].addr_spec == "zoe@example.com"
    assert msg["From"].addresses[0].addr_spec == "orders@gruenwald.example"
    assert "A1001" in msg["Subject"]
    assert msg["X-Ordertasks-Order"] == "A1001" and msg["X-Ordertasks-Kind"] == "send_confirmation_email"
    assert msg["Date"].datetime == ctx.clock.now()
    assert smtp_server.inbox.envelopes == [("orders@gruenwald.example", ["zoe@example.com"])]
    text, html = _parts(msg)
    for body in (text, html):
        for expected in ("€1,152.45", "€218.97", "€12.50", "€1,383.92", "€999.00", "€99.90", "Cable clip"):
            assert expected in body


def test_the_mailer_sends_the_very_bytes_the_header_check_read(smtp_server: SmtpServer) -> None:
    data = task_for("send_confirmation_email", "A1001", eur_order()).data
    checked = _render("send_confirmation_email", "A1001", data)
    assert isinstance(checked, order_email.CheckedEmail) and checked.checked is not None
    assert checked.checked.data == checked.as_bytes(policy=checked.policy.clone(linesep="\r\n"))
    plain = _render("send_confirmation_email", "A1001", data)
    plain.checked = None                    # the path any EmailMessage takes: smtplib serialises it
    mailer = smtp_server.mailer()
    mailer.send(checked)
    mailer.send(plain)
    mailer.close()
    first, second = smtp_server.inbox.messages
    assert first == second == checked.checked.data
    assert smtp_server.inbox.envelopes == [("orders@gruenwald.example", ["zoe@example.com"])] * 2


def test_checked_bytes_are_what_is_sent_even_if_the_message_changed_after(smtp_server: SmtpServer) -> None:
    # The check's verdict is about the checked bytes and envelope: a header added later cannot ride along.
    msg = _render("send_confirmation_email", "A1001", task_for("send_confirmation_email", "A1001", eur_order()).data)
    msg["Bcc"] = "eve@example.com"
    smtp_server.mailer().send(msg)
    assert smtp_server.inbox.envelopes == [("orders@gruenwald.example", ["zoe@example.com"])]
    assert b"eve@example.com" not in smtp_server.inbox.messages[0]


def test_message_id_is_deterministic_per_order_and_kind() -> None:
    data = task_for("send_confirmation_email", "A1001", eur_order()).data
    first = _render("send_confirmation_email", "A1001", data, SELLER)
    again = _render("send_confirmation_email", "A1001", data, SELLER)
    assert first["Message-ID"] == again["Message-ID"]
    assert first.as_bytes() == again.as_bytes()
    ids = {_render(kind, "A1001", data, SELLER)["Message-ID"] for kind in EMAIL_KINDS}
    ids.add(_render("send_confirmation_email", "A1002", data, SELLER)["Message-ID"])
    assert len(ids) == len(EMAIL_KINDS) + 1
    assert first["Message-ID"].startswith("<") and first["Message-ID"].endswith("@gruenwald.example>")


@pytest.mark.parametrize("kind", EMAIL_KINDS)
def test_each_kind_has_its_subject_and_header(kind: str, smtp_server: SmtpServer,
                                              make_context: Callable[..., EffectContext]) -> None:
    _perform(kind, task_for(kind, "B7", eur_order()), make_context(mailer=smtp_server.mailer()))
    msg = _received(smtp_server)
    assert msg["X-Ordertasks-Kind"] == kind
    assert msg["Subject"] == _wording(kind).subject.format(reference="#B7", order_id="B7")


def test_jpy_has_no_decimals(smtp_server: SmtpServer, make_context: Callable[..., EffectContext]) -> None:
    _perform("send_confirmation_email", task_for("send_confirmation_email", "J1", jpy_order()),
                                        make_context(mailer=smtp_server.mailer()))
    msg = _received(smtp_server)
    text, html = _parts(msg)
    for body in (text, html):
        assert "¥4,460" in body and "¥3,600" in body and "¥4,460.00" not in body
    assert msg["To"].addresses[0].display_name == "山田 太郎"


def test_html_part_escapes_customer_markup(smtp_server: SmtpServer,
                                           make_context: Callable[..., EffectContext]) -> None:
    order = eur_order(customer_name="<script>alert('x')</script> Eve")
    _perform("send_confirmation_email", task_for("send_confirmation_email", "X1", order),
                                        make_context(mailer=smtp_server.mailer()))
    text, html = _parts(_received(smtp_server))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<brass>" not in html and "&lt;brass&gt;" in html
    assert "<script>alert('x')</script> Eve" in text


def test_smtp_down_is_retryable() -> None:
    mailer = SmtpMailer("127.0.0.1", free_port(), timeout=1)
    with pytest.raises(DependencyUnavailable):
        mailer.send(_a_message())


@pytest.fixture
def hang_up_server() -> Iterator[int]:
    """A TCP server that accepts and closes at once: the relay hangs up before its greeting."""
    listener = socket.create_server(("127.0.0.1", 0))
    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()
    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def test_server_hanging_up_is_retryable(hang_up_server: int) -> None:
    with pytest.raises(DependencyUnavailable):
        SmtpMailer("127.0.0.1", hang_up_server, timeout=1).send(_a_message())


def test_recipient_refused_550_is_permanent(smtp_server: SmtpServer) -> None:
    smtp_server.inbox.replies["zoe@example.com"] = "550 5.1.1 <zoe@example.com>: no such mailbox"
    with pytest.raises(Rejected, match="550"):
        smtp_server.mailer().send(_a_message())
    assert smtp_server.inbox.messages == []


def test_recipient_deferred_451_is_retryable(smtp_server: SmtpServer) -> None:
    smtp_server.inbox.replies["zoe@example.com"] = "451 4.3.0 mailbox busy, try later"
    with pytest.raises(DependencyUnavailable, match="451"):
        smtp_server.mailer().send(_a_message())


def test_starttls_delivers(starttls_server: SmtpServer, tls_pair: TlsPair) -> None:
    starttls_server.mailer(starttls=True, ssl_context=tls_pair.client).send(_a_message())
    assert _received(starttls_server)["X-Ordertasks-Order"] == "A1001"


def test_plaintext_to_a_starttls_only_relay_is_refused(starttls_server: SmtpServer) -> None:
    # The relay answers 530 "Must issue a STARTTLS command first": a settings problem, not a blip.
    with pytest.raises(Rejected, match="530"):
        starttls_server.mailer().send(_a_message())


def test_untrusted_certificate_is_retryable_not_silently_accepted(starttls_server: SmtpServer) -> None:
    with pytest.raises(DependencyUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        starttls_server.mailer(starttls=True).send(_a_message())


def test_implicit_tls_delivers(smtps_server: SmtpServer, tls_pair: TlsPair) -> None:
    smtps_server.mailer(implicit_tls=True, ssl_context=tls_pair.client).send(_a_message())
    assert _received(smtps_server)["X-Ordertasks-Order"] == "A1001"


def test_implicit_tls_verifies_the_certificate(smtps_server: SmtpServer) -> None:
    with pytest.raises(DependencyUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        smtps_server.mailer(implicit_tls=True).send(_a_message())


def _a_message() -> EmailMessage:
    data = task_for("send_confirmation_email", "A1001", eur_order()).data
    return _render("send_confirmation_email", "A1001", data, SELLER)


def test_line_breaks_in_a_name_cannot_inject_headers() -> None:
    order = eur_order(customer_name="Eve\r\nBcc: victim@example.com")
    msg = _render("send_confirmation_email", "X2", task_for("send_confirmation_email", "X2", order).data,
                                   SELLER)
    parsed = message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert parsed["Bcc"] is None
    assert parsed["To"].addresses[0].display_name == "Eve Bcc: victim@example.com"
