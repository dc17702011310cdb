"""The invoice PDF of ``handlers/kinds/generate_invoice.py``: drawn straight onto a reportlab canvas,
byte-identical for the same order. reportlab is the ``handler`` extra's: only this module imports it.

Layout: fixed column positions, ``stringWidth`` for right alignment and a greedy word wrap for
text that may be too wide (descriptions, addresses). reportlab's platypus (``Paragraph``,
``Table``) cost 9–13 ms of CPU per invoice in line breaking and table geometry; an invoice
has one fixed shape, so hand-written layout gives the same page for a fraction of the CPU.
Long orders flow onto more pages: the table header repeats on each, the totals follow the
last row (on a new page when they do not fit) and every page has the ``INV-… · page N`` footer.

Determinism: reportlab's invariant mode removes its timestamps and random ids; the
creation date is the order's ``placed_at`` and the document id is seeded from the order id,
so neither the wall clock nor ``SOURCE_DATE_EPOCH`` changes the bytes. Same order, same
reportlab version → same PDF, so a retried task can never produce a second, different invoice.

Fonts: the built-in Helvetica (WinAnsi encoding) covers Latin-1, € and a few more (Š, Ž, Œ);
other characters are folded to their base letter (ř → r) or ``?`` rather than drawn as boxes.
Every string reaches the page through ``_draw_runs``, which folds it; nothing is parsed as
markup, so ``Desk lamp <brass>`` prints as written.
"""

from __future__ import annotations

import hashlib
import io
import unicodedata
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from ordertasks.handlers.contract import LineItem, OrderSnapshot, format_money
from ordertasks.handlers.kind import Seller

_LATIN_FALLBACK = str.maketrans({"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "ı": "i"})

_REGULAR, _BOLD = "Helvetica", "Helvetica-Bold"
# Typed here once: reportlab ships no type information, so its constants are Any to mypy.
_MM: float = mm
_PAGE_WIDTH: float = A4[0]
_PAGE_HEIGHT: float = A4[1]
# 18 mm margins plus the 6 pt inner padding platypus' frame had, so the page looks as before.
_LEFT, _RIGHT = 18 * _MM + 6, _PAGE_WIDTH - 18 * _MM - 6
_TOP, _BOTTOM = _PAGE_HEIGHT - 18 * _MM - 6, 18 * _MM + 6
_WIDTH = _RIGHT - _LEFT
_PAD = 3                      # a cell's top and bottom padding
_INSET = 6                    # a table cell's left and right padding
_GREY_BAND = colors.HexColor("#f3f3f3")
_FOOTER_GREY, _SMALL_GREY = colors.HexColor("#777777"), colors.HexColor("#555555")
_BODY_SIZE, _BODY_LEADING = 9.5, 12.5
_CELL_SIZE, _CELL_LEADING = 9, 11
_SMALL_SIZE, _SMALL_LEADING = 8, 10
_TOTAL_SIZE = 11


def _one_line(size: float) -> float:
    """The height of a padded cell holding one line of plain text, as platypus sized it."""
    return 2 * _PAD + 1.2 * size


_HEADER_HEIGHT = _one_line(_CELL_SIZE)
# SKU, Description (what is left), Qty, Unit price, Line total; the numbers are right-aligned.
_COLUMN_WIDTHS = (30 * _MM, _WIDTH - 102 * _MM, 14 * _MM, 28 * _MM, 30 * _MM)
_COLUMN_LEFTS = tuple(_LEFT + sum(_COLUMN_WIDTHS[:n]) for n in range(5))
_HEADINGS = ("SKU", "Description", "Qty", "Unit price", "Line total")
_TEXT_COLUMNS = 2             # the first two columns wrap; the rest are numbers
_TOTALS_WIDTH = 70 * _MM
# Three 9.5 pt rows and the 11 pt total, each one line (1.2 × its size) plus padding.
_TOTALS_HEIGHT = 3 * _one_line(_BODY_SIZE) + _one_line(_TOTAL_SIZE)

_Run = tuple[str, str, float]  # text, font name, font size: a piece of one line
_Line = Sequence[_Run]


def invoice_number(order_id: str) -> str:
    """The invoice number printed on the PDF: ``INV-<order_id>``."""
    return f"INV-{order_id}"


def render_invoice_pdf(order_id: str, snapshot: OrderSnapshot, seller: Seller) -> bytes:
    """The invoice as PDF bytes; the same inputs always give the same bytes."""
    buffer = io.BytesIO()
    sheet = _Sheet(_canvas(buffer, order_id, snapshot.placed_at, seller), invoice_number(order_id))
    _draw_header(sheet, order_id, snapshot, seller)
    _draw_parties(sheet, snapshot)
    _draw_items(sheet, snapshot)
    _draw_totals(sheet, snapshot)
    _draw_thanks(sheet, seller)
    sheet.finish()
    return buffer.getvalue()


def _canvas(buffer: io.BytesIO, order_id: str, placed_at: datetime, seller: Seller) -> Canvas:
    canvas = Canvas(buffer, pagesize=A4, invariant=1)
    canvas.setTitle(invoice_number(order_id))
    canvas.setAuthor(_pdf_text(seller.name))
    canvas.setSubject(f"Invoice for order {order_id}")
    canvas.setCreator("ordertasks")
    _pin_metadata(canvas, order_id, placed_at)
    return canvas


def _pin_metadata(canvas: Canvas, order_id: str, placed_at: datetime) -> None:
    stamp = _utc(placed_at).strftime("D:%Y%m%d%H%M%S+00'00'")
    # reportlab derives /ID from this signature plus the document info; seed it with the
    # order id instead of reportlab's timestamp (which SOURCE_DATE_EPOCH would change).
    canvas._doc.signature = hashlib.md5(f"ordertasks invoice {order_id}".encode(), usedforsecurity=False)
    canvas.setDateFormatter(lambda *_: stamp)


class _Sheet:
    """The canvas, the page's text and where the next block starts; turns pages, draws footers.

    All text of a page goes into one text object, drawn when the page is done: one object
    with a font switch only where the font changes costs far less than one per string. The
    bands and rules go straight onto the canvas, so they lie under the text.
    """

    def __init__(self, canvas: Canvas, number: str) -> None:
        self.canvas, self.number = canvas, number
        self.page, self.y = 1, _TOP
        self.text: Any = None
        self._font: tuple[str, float] = ("", 0.0)   # what the text object is set to
        self._start_text()

    def fits(self, height: float) -> bool:
        """Whether ``height`` points of content still fit above the bottom margin."""
        return self.y - height >= _BOTTOM

    def make_room(self, height: float) -> None:
        """Turn the page unless ``height`` points still fit on this one."""
        if not self.fits(height):
            self.new_page()

    def new_page(self) -> None:
        """Finish this page and start the next one at its top margin."""
        self.canvas.drawText(self.text)
        self.canvas.showPage()
        self.page, self.y = self.page + 1, _TOP
        self._start_text()

    def finish(self) -> None:
        """Draw the last page's text and write the PDF to the buffer."""
        self.canvas.drawText(self.text)
        self.canvas.save()

    def write(self, x: float, y: float, runs: _Line, align: str = "left") -> None:
        """One line of text; every string on the invoice is drawn (and folded) here."""
        folded = [(_pdf_text(text), font, size) for text, font, size in runs]
        self.text.setTextOrigin(x - _runs_width(folded) if align == "right" else x, y)
        for piece, font, size in folded:
            self._use_font(font, size)
            if len(folded) == 1:   # textLine, unlike textOut, does not measure the string again
                self.text.textLine(piece)
            else:
                self.text.textOut(piece)

    def set_colour(self, colour: Any) -> None:
        """The fill colour of the text written from now on."""
        self.text.setFillColor(colour)

    def _use_font(self, font: str, size: float) -> None:
        if self._font != (font, size):
            self.text.setFont(font, size)
            self._font = (font, size)

    def _start_text(self) -> None:
        self.text, self._font = self.canvas.beginText(), ("", 0.0)
        self.set_colour(_FOOTER_GREY)
        self.write(_RIGHT, 10 * _MM, [(f"{self.number} · page {self.page}", _REGULAR, 8)], "right")
        self.set_colour(colors.black)


def _draw_header(sheet: _Sheet, order_id: str, snapshot: OrderSnapshot, seller: Seller) -> None:
    # The invoice is issued for the paid order, so it carries the order's date, never the
    # render time: re-rendering on a retry must give the same bytes.
    day = _utc(snapshot.placed_at).date().isoformat()
    seller_width, facts_width = 0.55 * _WIDTH, 0.45 * _WIDTH
    texts = [line.strip() for line in seller.address.splitlines() if line.strip()] + [f"Tax ID: {seller.tax_id}"]
    seller_lines = [*_wrapped([seller.name], _BOLD, _BODY_SIZE, seller_width),
                    *_wrapped(texts, _REGULAR, _BODY_SIZE, seller_width)]
    left_bottom = _draw_block(sheet, _LEFT, sheet.y, seller_lines, _BODY_LEADING)
    sheet.write(_RIGHT, sheet.y - _PAD - 22, [("Invoice", _BOLD, 22)], "right")
    facts = [("Invoice no.", invoice_number(order_id)), ("Invoice date", day), ("Order date", day),
             ("Order", order_id)]
    fact_lines = [line for label, value in facts for line in _fact_lines(label, value, facts_width)]
    # The title's row is 26 pt of leading plus padding; the facts start below it.
    right_bottom = _draw_block(sheet, _RIGHT, sheet.y - 2 * _PAD - 26, fact_lines, _BODY_LEADING, "right")
    sheet.y = min(left_bottom, right_bottom) - 6 * _MM


def _fact_lines(label: str, value: str, width: float) -> list[_Line]:
    """``label value`` on one line, or the label above the wrapped value when both do not fit."""
    line = [(label, _BOLD, _BODY_SIZE), (f" {_pdf_text(value)}", _REGULAR, _BODY_SIZE)]
    if _runs_width(line) <= width:
        return [line]
    return [[(label, _BOLD, _BODY_SIZE)], *_wrapped([value], _REGULAR, _BODY_SIZE, width)]


def _draw_parties(sheet: _Sheet, snapshot: OrderSnapshot) -> None:
    """The "Bill to" block, and "Ship to" beside it when the order has a shipping address."""
    customer, ship = snapshot.customer, snapshot.shipping_address
    # Half the width each, less the 6 pt gap platypus left on the right of a cell.
    width = _WIDTH / 2 - _INSET
    bill = _titled("Bill to", [customer.name, customer.email], width)
    bottoms = [_draw_block(sheet, _LEFT, sheet.y, bill, _BODY_LEADING)]
    if ship is not None:
        address = [ship.name, ship.line1, ship.line2 or "", f"{ship.postal_code} {ship.city}", ship.country]
        ship_to = _titled("Ship to", [x for x in address if x], width)
        bottoms.append(_draw_block(sheet, _LEFT + _WIDTH / 2, sheet.y, ship_to, _BODY_LEADING))
    sheet.y = min(bottoms) - 8 * _MM


def _titled(title: str, texts: Sequence[str], width: float) -> list[_Line]:
    """A bold title line over ``texts``, each wrapped to ``width``."""
    return [[(title, _BOLD, _BODY_SIZE)], *_wrapped(texts, _REGULAR, _BODY_SIZE, width)]


def _draw_items(sheet: _Sheet, snapshot: OrderSnapshot) -> None:
    currency = snapshot.totals.currency
    _draw_table_header(sheet)
    banded = False
    for item in snapshot.items:
        cells = _item_cells(item, currency)
        height = 2 * _PAD + _CELL_LEADING * max(len(lines) for lines in cells)
        if not sheet.fits(height):
            # A new page repeats the header, and its bands start white again as platypus' did.
            sheet.new_page()
            _draw_table_header(sheet)
            banded = False
        _draw_row(sheet, height, cells, banded)
        sheet.y -= height
        banded = not banded
    _rule(sheet.canvas, _LEFT, _RIGHT, sheet.y)


def _draw_table_header(sheet: _Sheet) -> None:
    baseline = sheet.y - _PAD - _CELL_SIZE
    for n, heading in enumerate(_HEADINGS):
        _draw_cell_line(sheet, n, baseline, heading, _BOLD)
    sheet.y -= _HEADER_HEIGHT
    _rule(sheet.canvas, _LEFT, _RIGHT, sheet.y)


def _item_cells(item: LineItem, currency: str) -> list[list[str]]:
    """The row's cells as lines: SKU and description wrap within their columns."""
    texts = [item.sku, item.name]
    wrapped = [_wrap(text, _REGULAR, _CELL_SIZE, _COLUMN_WIDTHS[n] - 2 * _INSET) for n, text in enumerate(texts)]
    numbers = (str(item.quantity), format_money(item.unit_price, currency),
               format_money(item.line_total, currency))
    return wrapped + [[number] for number in numbers]


def _draw_row(sheet: _Sheet, height: float, cells: list[list[str]], banded: bool) -> None:
    if banded:   # white bands are the page itself
        sheet.canvas.setFillColor(_GREY_BAND)
        sheet.canvas.rect(_LEFT, sheet.y - height, _WIDTH, height, stroke=0, fill=1)
    for n, lines in enumerate(cells):
        for k, text in enumerate(lines):
            _draw_cell_line(sheet, n, sheet.y - _PAD - _CELL_SIZE - k * _CELL_LEADING, text, _REGULAR)


def _draw_cell_line(sheet: _Sheet, column: int, baseline: float, text: str, font: str) -> None:
    if column < _TEXT_COLUMNS:
        sheet.write(_COLUMN_LEFTS[column] + _INSET, baseline, [(text, font, _CELL_SIZE)])
        return
    inner = _COLUMN_WIDTHS[column] - 2 * _INSET
    right = _COLUMN_LEFTS[column] + _COLUMN_WIDTHS[column] - _INSET
    sheet.write(right, baseline, [(text, font, _fitting_size(text, font, _CELL_SIZE, inner))], "right")


def _fitting_size(text: str, font: str, size: float, width: float) -> float:
    """``size``, or smaller so that an unusually long number stays inside its column."""
    natural = _text_width(text, font, size)
    return size if natural <= width else size * width / natural


def _draw_totals(sheet: _Sheet, snapshot: OrderSnapshot) -> None:
    totals, c = snapshot.totals, snapshot.totals.currency
    rows = [("Subtotal", format_money(totals.subtotal, c)),
            (f"Tax ({_percent(snapshot.tax_rate)})", format_money(totals.tax, c)),
            ("Shipping", format_money(totals.shipping, c))]
    sheet.y -= 4 * _MM
    sheet.make_room(_TOTALS_HEIGHT)
    left = _RIGHT - _TOTALS_WIDTH
    for label, amount in rows:
        _draw_total_line(sheet, left, sheet.y - _PAD - _BODY_SIZE, label, amount, _REGULAR, _BODY_SIZE)
        sheet.y -= _one_line(_BODY_SIZE)
    _rule(sheet.canvas, left, _RIGHT, sheet.y)
    _draw_total_line(sheet, left, sheet.y - _PAD - _TOTAL_SIZE, "Total", format_money(totals.total, c), _BOLD,
                     _TOTAL_SIZE)
    sheet.y -= _one_line(_TOTAL_SIZE)


def _draw_total_line(sheet: _Sheet, left: float, baseline: float, label: str, amount: str, font: str,
                     size: float) -> None:
    sheet.write(left + _INSET, baseline, [(label, font, size)])
    sheet.write(_RIGHT - _INSET, baseline, [(amount, font, size)], "right")


def _draw_thanks(sheet: _Sheet, seller: Seller) -> None:
    lines = _wrapped([f"Thank you for your order. {seller.name} · Tax ID {seller.tax_id}"], _REGULAR,
                     _SMALL_SIZE, _WIDTH)
    sheet.y -= 10 * _MM
    sheet.make_room(len(lines) * _SMALL_LEADING)
    sheet.set_colour(_SMALL_GREY)
    # No padding: the line sat in a bare Paragraph, whose first baseline is one font size down.
    _draw_block(sheet, _LEFT, sheet.y + _PAD, lines, _SMALL_LEADING)
    sheet.set_colour(colors.black)
    sheet.y -= len(lines) * _SMALL_LEADING


def _rule(canvas: Canvas, left: float, right: float, y: float) -> None:
    canvas.setLineWidth(0.8)
    canvas.line(left, y, right, y)


def _draw_block(sheet: _Sheet, x: float, top: float, lines: Sequence[_Line], leading: float,
                align: str = "left") -> float:
    """Lines from ``top`` down (padding, then one font size to the first baseline); the bottom."""
    if not lines:
        return top - 2 * _PAD
    baseline = top - _PAD - lines[0][0][2]
    for k, line in enumerate(lines):
        sheet.write(x, baseline - k * leading, line, align)
    return top - 2 * _PAD - len(lines) * leading


def _runs_width(runs: _Line) -> float:
    return sum(_text_width(text, font, size) for text, font, size in runs)


def _text_width(text: str, font: str, size: float) -> float:
    return float(stringWidth(text, font, size))


def _wrapped(texts: Sequence[str], font: str, size: float, width: float) -> list[_Line]:
    """Each text wrapped to ``width``, as one-run lines in ``font``."""
    return [[(line, font, size)] for text in texts for line in _wrap(text, font, size, width)]


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """``text`` folded and broken into lines no wider than ``width``, at spaces where possible."""
    text = " ".join(_pdf_text(text).split())
    if _text_width(text, font, size) <= width:   # most lines: measured once, nothing to break
        return [text]
    words = [piece for word in text.split() for piece in _break_word(word, font, size, width)]
    # Every word now fits, so simpleSplit's greedy line filling never overflows.
    return simpleSplit(" ".join(words), font, size, width) or [""]


def _break_word(word: str, font: str, size: float, width: float) -> list[str]:
    """A word wider than the column (a long SKU, a URL) cut into pieces that fit."""
    pieces = []
    while _text_width(word, font, size) > width and len(word) > 1:
        cut = _fitting_prefix(word, font, size, width)
        pieces.append(word[:cut])
        word = word[cut:]
    return [*pieces, word]


def _fitting_prefix(word: str, font: str, size: float, width: float) -> int:
    """How many leading characters of ``word`` fit in ``width`` (at least one)."""
    used = 0.0
    for n, ch in enumerate(word):
        used += _text_width(ch, font, size)
        if used > width:
            return max(n, 1)
    return len(word)


def _percent(rate: Decimal) -> str:
    """``Decimal("0.19")`` → ``19%`` (the snapshot's tax rate is a fraction)."""
    return f"{(rate * 100).normalize():f}%"


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _pdf_text(text: str) -> str:
    """Fold characters Helvetica/WinAnsi cannot draw: ``ř`` → ``r``, ``Ł`` → ``L``, else ``?``."""
    if _drawable(text):   # the common case, and text that was folded already
        return text
    return "".join(ch if _drawable(ch) else _fold(ch) for ch in text)


def _drawable(text: str) -> bool:
    try:
        text.encode("cp1252")
        return True
    except UnicodeEncodeError:
        return False


def _fold(ch: str) -> str:
    base = "".join(c for c in unicodedata.normalize("NFKD", ch.translate(_LATIN_FALLBACK))
                   if not unicodedata.combining(c))
    return base if base and all(_drawable(c) for c in base) else "?"
