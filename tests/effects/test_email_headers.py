"""Names and addresses the checkout accepts always render, and reach SMTP with only our headers.

The review found a header injection: a ``customer.name`` holding an RFC 2047 encoded word
whose decoded text carries CRLF (``=?utf-8?b?...?=``) gave the stored ``.eml`` extra
``Bcc:``, ``Reply-To:`` and ``Content-Type:`` headers and an attacker's HTML body on this
Python (3.11.7). It also found addresses the checkout took but the handler could not send.
Here every accepted name/address goes through ``render_email`` and a real SMTP server
(aiosmtpd) and is parsed back from the bytes the server received.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ordertasks.handlers import mail as order_email
from ordertasks.handlers.kinds.send_confirmation_email import WORDING
from ordertasks.handlers.mail import EmailData
from ordertasks.handlers.errors import InvalidPayload
from ordertasks.handlers.mailheaders import mailbox
from ordertasks.producer.checkout_request import CustomerIn
from tests.effects.conftest import SmtpServer, _start_smtp
from tests.effects.orders import SELLER

INJECTED = "x\r\nBcc: victim@evil.example\r\nReply-To: evil@evil.example\r\nContent-Type: text/html\r\n\r\n<h1>phish</h1>"
ENCODED_WORD_NAME = "=?utf-8?b?" + base64.b64encode(INJECTED.encode()).decode() + "?="
OUR_HEADERS = sorted(h.lower() for h in order_email.HEADERS)


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    """One real SMTP server for the whole property run."""
    controller, server = _start_smtp()
    try:
        yield server
    finally:
        controller.stop()


def _data(name: str, email: str) -> EmailData:
    return EmailData.model_validate({
        "placed_at": datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc).isoformat(),
        "customer": {"name": name, "email": email},
        "items": [{"sku": "MUG-1", "name": "Mug", "quantity": 1, "unit_price": "9.50"}],
        "totals": {"currency": "EUR", "subtotal": "9.50", "tax": "1.81", "shipping": "4.90", "total": "16.21"}})


def _send_and_receive(smtp: SmtpServer, name: str, email: str) -> tuple[EmailMessage, list[str]]:
    before = len(smtp.inbox.messages)
    msg = order_email.render_email(WORDING, "send_confirmation_email", "ord_prop1", _data(name, email), SELLER)
    smtp.mailer().send(msg)
    assert len(smtp.inbox.messages) == before + 1
    received = message_from_bytes(smtp.inbox.messages[-1], policy=policy.default)
    assert isinstance(received, EmailMessage)
    return received, smtp.inbox.envelopes[-1][1]


NAMES = st.one_of(
    st.text(min_size=1, max_size=60),
    st.sampled_from([ENCODED_WORD_NAME, "=?utf-8?q?x=0D=0ABcc:_a@b.c?=", "Ada\r\nBcc: x@y.z", "Ada\u2028Bcc: x",
                     '"Ada" <evil@x.y>', "Ada, Bob", "Ada; Bob", "Zoë Müller-Łukasiewicz", "山田 太郎",
                     "O'Brien (the younger)", "a\\b", "Ada =? Lovelace", " ".join(["long"] * 40)]))
ADDRESSES = st.one_of(
    st.emails(),
    st.sampled_from(["a@b.c,d", "a,b@c.de", "a@b.de;c", "a@[1.2.3.4].x", "a@b..c", ".a@b.c", "a\\@b.c",
                     "ü@exämple.de", "a@exämple.de", "Ada@Example.COM", '"a b"@c.de', "a@b.de\r\nBcc: x@y.z",
                     "a@b.de>, <evil@x.y", "a@localhost", "a@1.2.3.4"]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=NAMES, address=ADDRESSES)
@example(name=ENCODED_WORD_NAME, address="ada@example.com")
@example(name="Ada Lovelace", address="ü@exämple.de")
def test_whatever_the_checkout_accepts_is_sent_with_exactly_our_headers(smtp: SmtpServer, name: str,
                                                                        address: str) -> None:
    try:
        customer = CustomerIn(name=name, email=address)
    except ValidationError:
        return   # refused at checkout (400): nothing is ever rendered for it
    received, recipients = _send_and_receive(smtp, customer.name, customer.email)
    assert sorted(h.lower() for h in received.keys()) == OUR_HEADERS
    [to] = received["To"].addresses
    assert (to.display_name, to.addr_spec) == (" ".join(customer.name.split()), customer.email)
    assert recipients == [customer.email]
    assert received["From"].addresses[0].addr_spec == "orders@gruenwald.example"
    assert [p.get_content_type() for p in received.iter_parts()] == ["text/plain", "text/html"]


@pytest.mark.parametrize("name", [ENCODED_WORD_NAME, "=?utf-8?q?x=0D=0ABcc:_a@b.c?=", "Ada\u2028Bcc: x"])
def test_the_injection_names_are_refused_at_checkout(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CustomerIn(name=name, email="ada@example.com")
    assert caught.value.errors()[0]["loc"] == ("name",)


def test_an_order_stored_before_the_fix_is_sent_without_the_hostile_display_name(smtp: SmtpServer) -> None:
    # The task contract still admits such a name (orders placed before checkout refused it).
    received, recipients = _send_and_receive(smtp, ENCODED_WORD_NAME, "ada@example.com")
    assert sorted(h.lower() for h in received.keys()) == OUR_HEADERS
    assert "Bcc" not in received and "Reply-To" not in received
    assert str(received["To"]) == "ada@example.com"
    assert recipients == ["ada@example.com"]
    assert b"phish" not in smtp.inbox.messages[-1]


@pytest.mark.parametrize("address", ["a@b.c,d", "a,b@c.de", "a@b..c", ".a@b.c", "ü@exämple.de"])
def test_an_unsendable_stored_address_is_a_permanent_failure_not_a_retry_loop(address: str) -> None:
    with pytest.raises(InvalidPayload, match="correct the order's email address"):
        mailbox("Ada", address)


def test_a_message_with_a_header_we_did_not_set_is_never_sent() -> None:
    from ordertasks.handlers.mailheaders import check_rendered

    msg = order_email.render_email(WORDING, "send_confirmation_email", "ord_prop1", _data("Ada", "ada@example.com"), SELLER)
    msg["Bcc"] = "victim@evil.example"
    with pytest.raises(InvalidPayload, match="headers"):
        check_rendered(msg, order_email.HEADERS, [mailbox("Ada", "ada@example.com")])
