"""Any order shape the shop has, through the real dispatcher and real far ends.

Orders without a shipping address, with the shop's ``metadata``, in JPY (no decimals) and KWD
(three): the confirmation email arrives at a real SMTP server, the invoice PDF is read back, the
warehouse notification fails once with a record saying why, and a shop's kind reads
``task.order.metadata``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from pypdf import PdfReader

from ordertasks.handlers.backends.memory import MemoryStore
from ordertasks.handlers.config import Catalog, load_catalog
from ordertasks.handlers.contract import OrderSnapshot, encode
from ordertasks.handlers.dispatch import Delivery, Dispatcher, Outcome, Result
from ordertasks.handlers.kind import EffectContext
from ordertasks.handlers.kinds.generate_invoice import render_invoice_pdf
from ordertasks.handlers.registry import KindRegistry
from tests.effects.conftest import SmtpServer, Warehouse
from tests.effects.orders import SELLER, FixedClock, digital_order, eur_order, jpy_order, kwd_order
from tests.support.orders import store_paid_order

SHOP_CATALOG = """
extends = "builtin"

[kinds.gift_note]
queue = "ordertasks-email"
delay_seconds = 0
dispatch_deadline_seconds = 60
effect = "tests.effects.shop_kinds:gift_note"

[kinds.ship_gift]
queue = "ordertasks-email"
delay_seconds = 0
dispatch_deadline_seconds = 60
effect = "tests.effects.shop_kinds:ship_gift"
"""
GIFT = {"to": "grace@example.com", "note": "Happy birthday, Grace!"}


class Shop:
    """A dispatcher over memory stores, the shop's catalog and the test's real far ends."""

    def __init__(self, catalog: Catalog, ctx: EffectContext, stores: MemoryStore) -> None:
        self.stores = stores
        self.dispatcher = Dispatcher(KindRegistry.from_catalog(catalog), ctx, self.stores.effects, self.stores.failed,
                                     self.stores.orders, catalog, FixedClock())

    def deliver(self, kind: str, order_id: str, order: OrderSnapshot, retry_count: int = 0) -> Result:
        """Store ``order`` as paid (once) and deliver ``kind``'s task for it."""
        if self.stores.orders.get_order(order_id) is None:
            store_paid_order(self.stores, order_id, order)
        return self.dispatcher.run(Delivery(encode(kind, order_id), retry_count=retry_count))


@pytest.fixture
def shop(tmp_path: Path, smtp_server: SmtpServer, warehouse: Warehouse,
         make_context: Callable[..., EffectContext]) -> Shop:
    path = tmp_path / "tasks.toml"
    path.write_text(SHOP_CATALOG, encoding="utf-8")
    stores = MemoryStore()
    ctx = make_context(mailer=smtp_server.mailer(), warehouse=warehouse.client(), analytics=stores.analytics)
    return Shop(load_catalog(path), ctx, stores)


def _received(server: SmtpServer, index: int = -1) -> EmailMessage:
    msg = message_from_bytes(server.inbox.messages[index], policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _texts(msg: EmailMessage) -> str:
    return "\n".join(part.get_content() for part in msg.walk() if part.get_content_maintype() == "text")


def _pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


# --- no shipping address -----------------------------------------------------------------------


def test_an_order_without_shipping_gets_its_confirmation_email(shop: Shop, smtp_server: SmtpServer) -> None:
    result = shop.deliver("send_confirmation_email", "ord_ebook", digital_order())
    assert result.outcome is Outcome.DONE, result
    msg = _received(smtp_server)
    assert msg["To"].addresses[0].addr_spec == "ada@example.com"
    assert "Notes on the Analytical Engine" in _texts(msg) and "€10.69" in _texts(msg)


def test_an_order_without_shipping_gets_an_invoice_without_a_ship_to_block(shop: Shop, tmp_path: Path) -> None:
    assert shop.deliver("generate_invoice", "ord_ebook", digital_order()).outcome is Outcome.DONE
    text = _pdf_text((tmp_path / "blobs" / "invoices" / "ord_ebook.pdf").read_bytes())
    assert "Bill to" in text and "Ada Lovelace" in text and "ada@example.com" in text
    assert "Ship to" not in text
    assert "Ship to" in _pdf_text(render_invoice_pdf("A1001", eur_order(), SELLER))


def test_the_warehouse_notification_of_an_order_without_shipping_fails_once_saying_why(
        shop: Shop, warehouse: Warehouse) -> None:
    result = shop.deliver("notify_warehouse", "ord_ebook", digital_order())
    assert result.outcome is Outcome.DEAD, result          # a failed-task record now, 200 to Cloud Tasks
    record = shop.stores.failed.get_failed("ord_ebook:notify_warehouse")
    assert record is not None and record.error_type == "InvalidPayload"
    assert "has no shipping_address, and notify_warehouse needs one" in record.error
    assert warehouse.requests == []
    again = shop.deliver("notify_warehouse", "ord_ebook", digital_order(), retry_count=1)
    assert again.outcome is Outcome.DEAD                   # never a retry loop


def test_a_shop_kind_declares_that_it_needs_the_address_too(shop: Shop) -> None:
    assert shop.deliver("ship_gift", "ord_ebook", digital_order()).outcome is Outcome.DEAD
    record = shop.stores.failed.get_failed("ord_ebook:ship_gift")
    assert record is not None and "has no shipping_address, and ship_gift needs one" in record.error
    assert shop.deliver("ship_gift", "ord_desk", eur_order()).outcome is Outcome.DONE


def test_other_kinds_do_not_need_the_address(shop: Shop) -> None:
    for kind in ("send_confirmation_email", "generate_invoice", "send_followup_email", "request_review"):
        assert shop.deliver(kind, "ord_ebook", digital_order()).outcome is Outcome.DONE, kind


# --- metadata ----------------------------------------------------------------------------------


def test_a_shop_kind_reads_the_stored_metadata_as_task_order_metadata(shop: Shop, smtp_server: SmtpServer) -> None:
    order = digital_order(gift=GIFT, campaign="spring-2024", tags=["ebook", 3, 1.5, True, None],
                          nested={"a": {"b": [{"c": "deep"}]}})
    stored_once = shop.deliver("gift_note", "ord_gift", order)
    assert stored_once.outcome is Outcome.DONE, stored_once
    stored = shop.stores.orders.get_order("ord_gift")
    assert stored is not None and OrderSnapshot.model_validate(stored.snapshot).metadata == order.metadata
    msg = _received(smtp_server)
    assert msg["To"].addresses[0].addr_spec == "grace@example.com"
    assert "Happy birthday, Grace!" in msg.get_content() and "campaign spring-2024" in msg.get_content()


def test_a_shop_kind_without_the_metadata_it_needs_fails_permanently(shop: Shop) -> None:
    result = shop.deliver("gift_note", "ord_plain", digital_order())
    assert result.outcome is Outcome.DEAD and "no gift in the order's metadata" in result.message


# --- currencies with other minor units ---------------------------------------------------------


def test_jpy_email_and_invoice_show_no_decimals(shop: Shop, smtp_server: SmtpServer, tmp_path: Path) -> None:
    for kind in ("send_confirmation_email", "generate_invoice"):
        assert shop.deliver(kind, "ord_jpy", jpy_order()).outcome is Outcome.DONE, kind
    texts = {"email": _texts(_received(smtp_server)),
             "invoice": _pdf_text((tmp_path / "blobs" / "invoices" / "ord_jpy.pdf").read_bytes())}
    for where, text in texts.items():
        for amount in ("¥1,200", "¥3,600", "¥360", "¥500", "¥4,460"):
            assert amount in text, (where, amount)
        assert "¥3,600.0" not in text and "¥4,460.0" not in text, where


def test_kwd_email_and_invoice_show_three_decimals(shop: Shop, smtp_server: SmtpServer, tmp_path: Path) -> None:
    for kind in ("send_confirmation_email", "generate_invoice"):
        assert shop.deliver(kind, "ord_kwd", kwd_order()).outcome is Outcome.DONE, kind
    texts = {"email": _texts(_received(smtp_server)),
             "invoice": _pdf_text((tmp_path / "blobs" / "invoices" / "ord_kwd.pdf").read_bytes())}
    for where, text in texts.items():
        for amount in ("4.125 KWD", "8.250 KWD", "1.500 KWD", "9.750 KWD", "0.488 KWD", "2.107 KWD", "12.345 KWD"):
            assert amount in text, (where, amount)
    assert "Ship to" not in texts["invoice"]


def test_the_analytics_fact_counts_kwd_in_fils(shop: Shop) -> None:
    assert shop.deliver("record_analytics", "ord_kwd", kwd_order()).outcome is Outcome.DONE
    fact = shop.stores.analytics.get_fact("ord_kwd")
    assert fact is not None and (fact.currency, fact.revenue_minor) == ("KWD", 12345)
