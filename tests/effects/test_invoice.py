"""Invoice PDFs: read back with pypdf, rendered with pypdfium2, written once to a local directory."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from pypdf import PageObject, PdfReader
from reportlab.pdfbase.pdfmetrics import stringWidth

from ordertasks.handlers.backends.localdir import LocalDirBlobStore
from ordertasks.handlers.contract import OrderSnapshot, format_money
from ordertasks.handlers.kinds.generate_invoice import generate_invoice, render_invoice_pdf
from ordertasks.handlers.kind import EffectContext
from tests.effects.orders import SELLER, eur_order, jpy_order, task_for


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def _pieces(page: PageObject) -> list[tuple[str, float, float, float]]:
    """Each drawn string with where it starts and ends (x, right end) and its baseline y."""
    found: list[tuple[str, float, float, float]] = []

    def visit(text: str, cm: list[float], tm: list[float], font: object, size: float) -> None:
        if text.strip():   # pypdf adds the spaces and line breaks it infers from positions
            x, y = tm[4] * cm[0] + cm[4], tm[5] * cm[3] + cm[5]
            found.append((text.strip(), x, x + stringWidth(text.strip(), "Helvetica", size), y))
    page.extract_text(visitor_text=visit)
    return found


def _starting_at(pieces: list[tuple[str, float, float, float]], heading: str) -> float:
    return next(x for text, x, _, _ in pieces if text == heading)


def _order_with(items: int | None = None, **changes: object) -> OrderSnapshot:
    """The EUR sample order, with ``items`` one-euro lines instead of its own and ``changes`` applied."""
    base = eur_order().model_dump(mode="json")
    if items is not None:
        base["items"] = [{"sku": f"SKU-{n:03d}", "name": f"Item number {n}", "quantity": 1, "unit_price": "1.00"}
                         for n in range(items)]
        base["totals"] = {"currency": "EUR", "subtotal": f"{items}.00", "tax": "0", "shipping": "0",
                          "total": f"{items}.00"}
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = base
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[leaf] = value
    return OrderSnapshot.model_validate(base)


def test_invoice_shows_seller_customer_lines_and_totals() -> None:
    order = eur_order()
    text = _text(render_invoice_pdf("A1001", order, SELLER))
    for expected in ("Invoice", "INV-A1001", "Grünwald & Söhne GmbH", "Marktstraße 1, 10115 Berlin, DE",
                     "DE123456789", "Invoice date 2024-03-01", "Order date 2024-03-01",
                     "zoe@example.com", "Rue de l'Église 7", "Bâtiment B", "69002 Lyon",
                     "Subtotal", "€1,152.45", "Tax (19%)", "€218.97", "Shipping", "€12.50", "Total", "€1,383.92"):
        assert expected in text, expected
    for item in order.items:
        for cell in (item.sku, item.name, format_money(item.unit_price, "EUR"), format_money(item.line_total, "EUR")):
            assert cell in text, cell


def test_same_order_gives_identical_bytes_and_pinned_metadata() -> None:
    first = render_invoice_pdf("A1001", eur_order(), SELLER)
    assert first == render_invoice_pdf("A1001", eur_order(), SELLER)
    assert first != render_invoice_pdf("A1002", eur_order(), SELLER)
    meta = PdfReader(io.BytesIO(first)).metadata
    assert meta is not None and str(meta["/CreationDate"]) == "D:20240301233000+00'00'"
    assert str(meta["/Title"]) == "INV-A1001"


def test_bytes_do_not_depend_on_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    # reportlab's invariant mode would otherwise seed /ID and the dates from SOURCE_DATE_EPOCH.
    before = render_invoice_pdf("A1001", eur_order(), SELLER)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert render_invoice_pdf("A1001", eur_order(), SELLER) == before


def test_names_outside_winansi_are_folded_not_boxed() -> None:
    pdf = render_invoice_pdf("A1001", eur_order(customer_name="Antonín Dvořák-Łukasiewicz"), SELLER)
    assert "Antonín Dvorák-Lukasiewicz" in _text(pdf)   # ř → r; á is in WinAnsi and stays
    # reportlab draws unknown glyphs as ZapfDingbats boxes; folding means that font never appears.
    assert b"ZapfDingbats" not in pdf


def test_jpy_invoice_has_no_decimals_and_cjk_degrades_to_question_marks() -> None:
    text = _text(render_invoice_pdf("J1", jpy_order(), SELLER))
    assert "¥4,460" in text and "¥1,200" in text and "¥3,600" in text and "Tax (10%)" in text
    assert "¥4,460.00" not in text
    assert "?? ??" in text   # 山田 太郎: Helvetica has no CJK glyphs (known limitation)


def test_long_order_flows_onto_more_pages_with_totals_at_the_end() -> None:
    base = eur_order().model_dump(mode="json")
    base["items"] = [{"sku": f"SKU-{n:03d}", "name": f"Item number {n}", "quantity": 1, "unit_price": "1.00"}
                     for n in range(120)]
    base["totals"] = {"currency": "EUR", "subtotal": "120.00", "tax": "22.80", "shipping": "0", "total": "142.80"}
    pdf = render_invoice_pdf("LONG1", OrderSnapshot.model_validate(base), SELLER)
    pages = PdfReader(io.BytesIO(pdf)).pages
    assert len(pages) > 1
    assert "€142.80" in pages[-1].extract_text() and "SKU-119" in _text(pdf)
    assert "Unit price" in pages[1].extract_text(), "the table header repeats on every page"


def test_generate_invoice_writes_once(make_context: Callable[..., EffectContext], tmp_path: Path) -> None:
    ctx = make_context(blobs=LocalDirBlobStore(tmp_path / "bucket"))
    task = task_for("generate_invoice", "A1001", eur_order())
    first = generate_invoice(task, ctx)
    stored = (tmp_path / "bucket" / "invoices" / "A1001.pdf").read_bytes()
    assert first == {"path": "invoices/A1001.pdf", "written": True, "created": True,
                     "sha256": hashlib.sha256(stored).hexdigest()}
    second = generate_invoice(task, ctx)
    assert second == first | {"written": False, "created": False}
    assert (tmp_path / "bucket" / "invoices" / "A1001.pdf").read_bytes() == stored
    assert "INV-A1001" in _text(stored)


def test_first_page_renders_to_a_non_blank_png(tmp_path: Path) -> None:
    pdf = render_invoice_pdf("A1001", eur_order(), SELLER)
    image = pdfium.PdfDocument(pdf)[0].render(scale=1).to_pil().convert("L")
    image.save(tmp_path / "invoice.png")
    dark = sum(1 for value in image.getdata() if value < 128)
    assert abs(image.size[0] - 595) <= 1 and abs(image.size[1] - 842) <= 1   # A4 at 72 dpi
    assert 0.005 < dark / (image.size[0] * image.size[1]) < 0.2


LONG_DESCRIPTION = ("Solid oak standing desk with electrically adjustable height, cable tray, anti-collision "
                    "sensor and a ten year warranty on frame and motor, delivered assembled to your room")


def test_long_description_and_sku_wrap_inside_their_columns() -> None:
    sku = "OAK-DESK-" + "X" * 55   # 64 characters and no space: it has to be cut
    order = _order_with(items__0__name=LONG_DESCRIPTION, items__0__sku=sku)
    pdf = render_invoice_pdf("A1001", order, SELLER)
    pages = PdfReader(io.BytesIO(pdf)).pages
    assert len(pages) == 1
    text = pages[0].extract_text()
    assert all(word in text for word in LONG_DESCRIPTION.split())
    assert sku in "".join(text.split())
    pieces = _pieces(pages[0])
    description_x, qty_x = _starting_at(pieces, "Description"), _starting_at(pieces, "Qty")
    descriptions = [p for p in pieces if p[1] == description_x and p[0] != "Description"]
    assert all(right < qty_x for _, _, right, _ in descriptions), "no description line runs into Qty"
    long_one = [p for p in descriptions if p[0] in LONG_DESCRIPTION]
    assert len(long_one) >= 3, "the long description wraps onto lines of its own"
    sku_lines = [p for p in pieces if p[0] in sku]
    assert len(sku_lines) >= 2 and all(right < description_x for _, _, right, _ in sku_lines)
    # The row grows to hold its lines: the next row starts below the description's last line.
    next_row_y = next(y for text, _, _, y in pieces if text == "LAMP-01")
    assert next_row_y < min(y for _, _, _, y in long_one)


def test_long_address_wraps_inside_the_ship_to_column() -> None:
    street = "Unit 4, The Old Brewery Buildings, Long Industrial Estate Road behind the station, Entrance C"
    email = "a.very.long.address.for.invoices.and.receipts@accounts.example-company.co.uk"
    order = _order_with(shipping_address__line1=street, customer__email=email)
    page = PdfReader(io.BytesIO(render_invoice_pdf("A1001", order, SELLER))).pages[0]
    text = page.extract_text()
    assert all(word in text for word in street.split()) and email in "".join(text.split())
    pieces = _pieces(page)
    ship_x = _starting_at(pieces, "Ship to")
    assert all(right < ship_x for text, x, right, _ in pieces if x < ship_x and text.strip() in email)
    street_lines = [p for p in pieces if p[1] == ship_x and p[0] in street]
    assert len(street_lines) >= 2 and all(right <= 595.28 - 18 * 72 / 25.4 for _, _, right, _ in street_lines)
    below = next(y for text, _, _, y in pieces if text == "Bâtiment B")
    assert below < min(y for _, _, _, y in street_lines), "the next address line follows the wrapped one"


def test_totals_move_to_a_new_page_when_the_last_page_is_full() -> None:
    # Add rows until the totals no longer fit under the last one: they must open the next
    # page, after every row, without the table header, and each page keeps its footer.
    for items in range(1, 80):
        pdf = render_invoice_pdf("FULL1", _order_with(items), SELLER)
        texts = [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]
        last_row = max(n for n, text in enumerate(texts) if f"SKU-{items - 1:03d}" in text)
        totals = next(n for n, text in enumerate(texts) if "Subtotal" in text)
        if totals != last_row:
            break
    else:
        pytest.fail("the totals never needed a page of their own")
    assert totals == last_row + 1 == len(texts) - 1
    assert "SKU-" not in texts[totals] and "Unit price" not in texts[totals]
    assert f"€{items}.00" in texts[totals] and "Total" in texts[totals]
    assert "Thank you for your order." in texts[totals]
    for n, text in enumerate(texts, start=1):
        assert f"INV-FULL1 · page {n}" in text
