"""Invoice PDFs: read back with pypdf, rendered with pypdfium2, written once to a local directory."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from pypdf import PdfReader

from ordertasks.handlers.backends.localdir import LocalDirBlobStore
from ordertasks.handlers.contract import OrderSnapshot, format_money
from ordertasks.handlers.kinds.generate_invoice import generate_invoice, render_invoice_pdf
from ordertasks.handlers.kind import EffectContext
from tests.effects.orders import SELLER, eur_order, jpy_order, task_for


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


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
