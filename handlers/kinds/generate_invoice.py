"""Invoice PDFs: rendered with reportlab, byte-identical for the same order, written once.

Determinism: reportlab's invariant mode removes its timestamps and random ids; the
creation date is the order's ``placed_at`` and the document id is seeded from the order id,
so neither the wall clock nor ``SOURCE_DATE_EPOCH`` changes the bytes. Same order, same
reportlab version → same PDF, so a retried task can never produce a second, different invoice.

Fonts: the built-in Helvetica (WinAnsi encoding) covers Latin-1, € and a few more (Š, Ž, Œ);
other characters are folded to their base letter (ř → r) or ``?`` rather than drawn as boxes.
"""

from __future__ import annotations

import hashlib
import io
import unicodedata
from datetime import datetime, timezone
from decimal import Decimal
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from ordertasks.handlers.contract import ORDER_ID_RULE, LineItem, OrderSnapshot, Task, format_money, valid_order_id
from ordertasks.handlers.kind import EffectContext, FarEnds, Kind, Recorded, Seller

CONTENT_TYPE = "application/pdf"
INVOICE_PREFIX = "invoices/"
_STYLES = getSampleStyleSheet()
_BODY = ParagraphStyle("InvoiceBody", parent=_STYLES["Normal"], fontName="Helvetica", fontSize=9.5, leading=12.5)
_SMALL = ParagraphStyle("InvoiceSmall", parent=_BODY, fontSize=8, leading=10, textColor=colors.HexColor("#555555"))
_CELL = ParagraphStyle("InvoiceCell", parent=_BODY, fontSize=9, leading=11)
_RIGHT = ParagraphStyle("InvoiceRight", parent=_BODY, alignment=TA_RIGHT)
_TITLE = ParagraphStyle("InvoiceTitle", parent=_BODY, fontName="Helvetica-Bold", fontSize=22, leading=26,
                        alignment=TA_RIGHT)
PageHook = Callable[[Canvas, SimpleDocTemplate], None]
_LATIN_FALLBACK = str.maketrans({"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "ı": "i"})


def invoice_number(order_id: str) -> str:
    """The invoice number printed on the PDF: ``INV-<order_id>``."""
    return f"INV-{order_id}"


def invoice_path(order_id: str) -> str:
    """Where the invoice lives in the blob store; ``ValueError`` for an id that is not safe.

    The task contract already refuses such ids; checking here too means no caller can turn
    an order id into ``invoices/../x.pdf`` or a GCS name outside ``invoices/``.
    """
    if not valid_order_id(order_id):
        raise ValueError(f"order id {order_id[:80]!r} cannot name an invoice: {ORDER_ID_RULE}")
    return f"{INVOICE_PREFIX}{order_id}.pdf"


def render_invoice_pdf(order_id: str, snapshot: OrderSnapshot, seller: Seller) -> bytes:
    """The invoice as PDF bytes; the same inputs always give the same bytes."""
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, invariant=1, leftMargin=18 * mm, rightMargin=18 * mm,
                            topMargin=18 * mm, bottomMargin=18 * mm, title=invoice_number(order_id),
                            author=_pdf_text(seller.name), subject=f"Invoice for order {order_id}",
                            creator="ordertasks")
    pin = _pin_metadata(order_id, snapshot.placed_at)
    doc.build(_story(order_id, snapshot, seller), onFirstPage=pin, onLaterPages=_page_footer(order_id))
    return buffer.getvalue()


def _pin_metadata(order_id: str, placed_at: datetime) -> PageHook:
    stamp = _utc(placed_at).strftime("D:%Y%m%d%H%M%S+00'00'")
    footer = _page_footer(order_id)

    def on_first_page(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        # reportlab derives /ID from this signature plus the document info; seed it with the
        # order id instead of reportlab's timestamp (which SOURCE_DATE_EPOCH would change).
        canvas._doc.signature = hashlib.md5(f"ordertasks invoice {order_id}".encode(), usedforsecurity=False)
        canvas.setDateFormatter(lambda *_: stamp)
        footer(canvas, doc)
    return on_first_page


def _page_footer(order_id: str) -> PageHook:
    def draw(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.setFillColor(colors.HexColor("#777777"))
        # 6 pt: the frame's inner padding, so the footer lines up with the table's right edge.
        canvas.drawRightString(doc.pagesize[0] - doc.rightMargin - 6, 10 * mm,
                               f"{invoice_number(order_id)} · page {doc.page}")
        canvas.restoreState()
    return draw


def _story(order_id: str, snapshot: OrderSnapshot, seller: Seller) -> list[Flowable]:
    return [_header(order_id, snapshot, seller), Spacer(1, 6 * mm), _parties(snapshot), Spacer(1, 8 * mm),
            _items_table(snapshot), Spacer(1, 4 * mm), _totals_table(snapshot), Spacer(1, 10 * mm),
            Paragraph(_para(f"Thank you for your order. {seller.name} · Tax ID {seller.tax_id}"), _SMALL)]


def _header(order_id: str, snapshot: OrderSnapshot, seller: Seller) -> Table:
    # The invoice is issued for the paid order, so it carries the order's date, never the
    # render time: re-rendering on a retry must give the same bytes.
    day = _utc(snapshot.placed_at).date().isoformat()
    seller_block = Paragraph(f"<b>{_para(seller.name)}</b><br/>{_lines(seller.address)}<br/>"
                             f"Tax ID: {_para(seller.tax_id)}", _BODY)
    facts = Paragraph(f"<b>Invoice no.</b> {_para(invoice_number(order_id))}<br/>"
                      f"<b>Invoice date</b> {day}<br/><b>Order date</b> {day}<br/>"
                      f"<b>Order</b> {_para(order_id)}", _RIGHT)
    table = Table([[seller_block, Paragraph("Invoice", _TITLE)], ["", facts]], colWidths=["55%", "45%"])
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("SPAN", (0, 0), (0, 1)),
                               ("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 0)]))
    return table


def _parties(snapshot: OrderSnapshot) -> Table:
    customer, ship = snapshot.customer, snapshot.shipping_address
    bill = Paragraph(f"<b>Bill to</b><br/>{_para(customer.name)}<br/>{_para(customer.email)}", _BODY)
    address_lines = [ship.name, ship.line1, ship.line2 or "", f"{ship.postal_code} {ship.city}", ship.country]
    ship_to = Paragraph("<b>Ship to</b><br/>" + "<br/>".join(_para(x) for x in address_lines if x), _BODY)
    table = Table([[bill, ship_to]], colWidths=["50%", "50%"])
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    return table


def _items_table(snapshot: OrderSnapshot) -> Table:
    currency = snapshot.totals.currency
    rows: list[list[Any]] = [["SKU", "Description", "Qty", "Unit price", "Line total"]]
    rows += [_item_row(item, currency) for item in snapshot.items]
    table = Table(rows, colWidths=[30 * mm, None, 14 * mm, 28 * mm, 30 * mm], repeatRows=1)
    table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 9), ("FONT", (0, 1), (-1, -1), "Helvetica", 9),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black), ("LINEBELOW", (0, -1), (-1, -1), 0.8, colors.black),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f3f3f3")]),
        ("ALIGN", (2, 0), (-1, -1), "RIGHT"), ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return table


def _item_row(item: LineItem, currency: str) -> list[Any]:
    return [_pdf_text(item.sku), Paragraph(_para(item.name), _CELL), str(item.quantity),
            format_money(item.unit_price, currency), format_money(item.line_total, currency)]


def _totals_table(snapshot: OrderSnapshot) -> Table:
    totals, c = snapshot.totals, snapshot.totals.currency
    rows = [["Subtotal", format_money(totals.subtotal, c)],
            [f"Tax ({_percent(snapshot.tax_rate)})", format_money(totals.tax, c)],
            ["Shipping", format_money(totals.shipping, c)],
            ["Total", format_money(totals.total, c)]]
    table = Table(rows, colWidths=[40 * mm, 30 * mm], hAlign="RIGHT")
    table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -2), "Helvetica", 9.5), ("FONT", (0, -1), (-1, -1), "Helvetica-Bold", 11),
        ("ALIGN", (1, 0), (1, -1), "RIGHT"), ("LINEABOVE", (0, -1), (-1, -1), 0.8, colors.black)]))
    return table


def _percent(rate: Decimal) -> str:
    """``Decimal("0.19")`` → ``19%`` (the snapshot's tax rate is a fraction)."""
    return f"{(rate * 100).normalize():f}%"


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _pdf_text(text: str) -> str:
    """Fold characters Helvetica/WinAnsi cannot draw: ``ř`` → ``r``, ``Ł`` → ``L``, else ``?``."""
    return "".join(ch if _drawable(ch) else _fold(ch) for ch in text)


def _drawable(ch: str) -> bool:
    try:
        ch.encode("cp1252")
        return True
    except UnicodeEncodeError:
        return False


def _fold(ch: str) -> str:
    base = "".join(c for c in unicodedata.normalize("NFKD", ch.translate(_LATIN_FALLBACK))
                   if not unicodedata.combining(c))
    return base if base and all(_drawable(c) for c in base) else "?"


def _para(text: str) -> str:
    """Customer text made safe for reportlab's Paragraph markup (which would parse ``<b>``)."""
    return escape(_pdf_text(text))


def _lines(text: str) -> str:
    return "<br/>".join(_para(line.strip()) for line in text.splitlines() if line.strip())


def generate_invoice(task: Task, ctx: EffectContext) -> dict[str, Any]:
    """Render the invoice and write it once; result ``{"path", "written", "created", "sha256"}``."""
    pdf = render_invoice_pdf(task.order_id, task.data, ctx.seller)
    path = invoice_path(task.order_id)
    written = ctx.blobs.put_once(path, pdf, CONTENT_TYPE)
    return {"path": path, "written": written, "created": written, "sha256": hashlib.sha256(pdf).hexdigest()}


class InvoiceRecord:
    """The invoice object itself is the done mark: its existence says the effect happened."""

    def find(self, order_id: str, ends: FarEnds) -> Recorded | None:
        """The order's invoice object, when it exists: ``{"path": ...}``."""
        path = invoice_path(order_id)
        created = ends.blobs.created_at(path)
        return None if created is None else Recorded(created, {"path": path, "written": True})

    def count(self, ends: FarEnds, since: datetime | None = None) -> int:
        """Invoices in the blob store (a listing of ``invoices/``)."""
        return ends.blobs.count(INVOICE_PREFIX, since)


# Written with if_generation_match=0 (GCS) / an exclusive link (local): create-once.
KIND = Kind(perform=generate_invoice, create_once=True, done_at=InvoiceRecord())
