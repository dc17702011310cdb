"""Order emails: what every email kind shares (its data, rendering, sending).

The email kinds themselves (confirmation, follow-up a day later, review request a week later,
and any a shop adds) are declarations in ``handlers/kinds/`` made with ``email_kind(wording)``.
The bodies (a styled HTML part and a plain-text part with the same content) are
``handlers.mailbody``; the order reference in the subject (``#GJM6-2K4Q``, or the shop's own
``metadata["order_number"]``) is ``handlers.order_reference``. A wording with a
``review_prompt`` links to the catalog's ``[email] review_url``; without that setting the
email is sent without a link and says nothing about one.

``render_email`` is pure: the same kind, order and seller always give the same message,
including its ``Message-ID`` (a hash of ``order_id:kind``), so a resend after a crash between
"sent" and "marked done" carries the same id and mail clients can fold the duplicate.
A kind's ``perform`` only renders and hands the message to ``ctx.mailer``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

from pydantic import Field

from ordertasks.handlers.contract import (Address, ContractModel, Customer, LineItem, OrderSnapshot, Task, Totals,
                                          format_money)
from ordertasks.handlers.kind import EffectContext, Kind, Seller
from ordertasks.handlers.mailbody import EmailView, ItemLine, html_body, text_body
from ordertasks.handlers.mailheaders import CheckedWire, check_rendered, mailbox, sender, subject_text
from ordertasks.handlers.order_reference import order_reference, shop_order_number


class EmailData(ContractModel):
    """What an order email shows."""

    placed_at: datetime
    customer: Customer
    items: tuple[LineItem, ...] = Field(min_length=1, max_length=200)
    totals: Totals
    shipping_address: Address | None = None     # None: the order ships nothing; no address block
    order_number: str | None = None             # the shop's own, from metadata (handlers.order_reference)


def email_data(order: OrderSnapshot) -> dict[str, Any]:
    """The projection of an order onto what its emails show."""
    return {"placed_at": order.placed_at, "customer": order.customer, "items": order.items, "totals": order.totals,
            "shipping_address": order.shipping_address, "order_number": shop_order_number(order.metadata)}

# Every header an order email carries; check_rendered refuses a message with any other.
HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "X-Ordertasks-Order", "X-Ordertasks-Kind",
           "Content-Type", "MIME-Version")


class CheckedEmail(EmailMessage):
    """An order email that carries what ``check_rendered`` verified (``checked``): its
    serialised bytes and its envelope.

    A mailer that sends ``checked`` (``SmtpMailer`` does) puts on the wire exactly the bytes
    and recipients that were checked, whatever happens to the object afterwards, and skips
    serialising the message a second time (~0.65 ms of CPU per email). Any other mailer
    sees an ordinary ``EmailMessage``.
    """

    checked: CheckedWire | None = None


@dataclass(frozen=True)
class Wording:
    """The words of one email kind."""

    subject: str        # formatted with reference (``#GJM6-2K4Q``) and order_id (the internal id)
    heading: str
    intro: str          # formatted with name (escaped and isolated by the renderer)
    review_prompt: str | None = None    # the label of a link to [email] review_url, when that is set


def message_id(order_id: str, kind: str, mail_from: str) -> str:
    """``<sha256(order_id:kind)[:32]@domain>``: the same for every render of one email."""
    digest = hashlib.sha256(f"{order_id}:{kind}".encode()).hexdigest()[:32]
    _, address = parseaddr(mail_from)
    domain = address.rpartition("@")[2] or "ordertasks"
    return f"<{digest}@{domain}>"


def render_email(wording: Wording, kind: str, order_id: str, data: EmailData, seller: Seller,
                 sent_at: datetime | None = None, review_link: str | None = None) -> CheckedEmail:
    """Build the message for ``kind``: headers, a plain-text part and an HTML alternative.

    ``Date`` is ``sent_at`` when given, else the order's ``placed_at``; ``review_link`` is
    shown when ``wording`` has a ``review_prompt``. Raises ``InvalidPayload`` (a permanent
    failure, never a retry loop) for an address the email package cannot carry, or if the
    serialised message would differ from what we set.
    """
    view = email_view(wording, order_id, data, seller, review_link)
    recipient = mailbox(data.customer.name, data.customer.email)
    msg = CheckedEmail()
    # Address headers from headerregistry objects, never from text (see handlers.mailheaders).
    msg["From"] = sender(seller.mail_from)
    msg["To"] = recipient
    msg["Subject"] = view.subject
    msg["Date"] = format_datetime(sent_at or data.placed_at)
    msg["Message-ID"] = message_id(order_id, kind, seller.mail_from)
    msg["X-Ordertasks-Order"] = order_id
    msg["X-Ordertasks-Kind"] = kind
    msg.set_content(text_body(view))
    msg.add_alternative(html_body(view), subtype="html")
    # A fixed boundary (email picks a random one) keeps the whole message deterministic.
    msg.set_boundary("=_ordertasks_" + msg["Message-ID"].strip("<>").partition("@")[0])
    wire = check_rendered(msg, HEADERS, [recipient])
    msg.checked = CheckedWire(wire, sender(seller.mail_from).addr_spec, (recipient.addr_spec,))
    return msg


def email_view(wording: Wording, order_id: str, data: EmailData, seller: Seller,
               review_link: str | None = None) -> EmailView:
    """What the email of ``wording`` shows for the order, as text (both bodies render it)."""
    reference = order_reference(order_id, data.order_number)
    currency = data.totals.currency
    link = (wording.review_prompt, review_link) if wording.review_prompt and review_link else None
    return EmailView(
        subject=subject_text(wording.subject.format(reference=reference, order_id=order_id)),
        heading=wording.heading, intro=wording.intro, customer_name=data.customer.name, reference=reference,
        placed_on=f"{data.placed_at.day} {MONTHS[data.placed_at.month - 1]} {data.placed_at.year}",
        items=tuple(_item_line(item, currency) for item in data.items), money=_money_lines(data.totals),
        address=_address_lines(data.shipping_address), link=link,
        seller_name=seller.name, seller_address=seller.address, order_id=order_id)


# The emails are in English whatever the process's locale (``%B`` would follow it).
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


def _item_line(item: LineItem, currency: str) -> ItemLine:
    return ItemLine(item.name, item.sku, item.quantity, format_money(item.unit_price, currency),
                    format_money(item.line_total, currency))


def _money_lines(totals: Totals) -> tuple[tuple[str, str], ...]:
    c = totals.currency
    return (("Subtotal", format_money(totals.subtotal, c)), ("Tax", format_money(totals.tax, c)),
            ("Shipping", format_money(totals.shipping, c)), ("Total", format_money(totals.total, c)))


def _address_lines(address: Address | None) -> tuple[str, ...] | None:
    if address is None:
        return None
    lines = (address.name, address.line1, address.line2 or "", f"{address.postal_code} {address.city}",
             address.country)
    return tuple(line for line in lines if line)


def email_kind(wording: Wording) -> Kind:
    """Declare an email kind: render with ``wording``, send through ``ctx.mailer``.

    Result ``{"message_id": ...}``.
    """
    def send(task: Task, ctx: EffectContext) -> dict[str, Any]:
        link = ctx.email.review_link(task.order_id) if wording.review_prompt else None
        msg = render_email(wording, task.kind, task.order_id, task.data, ctx.seller, sent_at=ctx.clock.now(),
                           review_link=link)
        ctx.mailer.send(msg)
        return {"message_id": msg["Message-ID"]}
    return Kind(perform=send, model=EmailData, project=email_data)
