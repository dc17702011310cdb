"""The two bodies of an order email, rendered from one ``EmailView``: the same content twice.

``text_body`` and ``html_body`` show the same things in the same order: the greeting, the
order reference and date, every item (name, SKU, quantity, unit price, line total), the money
(subtotal, tax, shipping, total), the shipping address when the order has one, the link when
the kind has one, and the shop with the order's full id. A client that shows only the plain
part misses nothing.

The HTML is written for mail clients, not browsers: inline ``style`` attributes only (many
clients drop ``<style>`` blocks and never load a stylesheet), layout tables, at most 600 px
wide, no images (nothing is lost where images are blocked), system fonts. Amounts sit in cells
aligned right, with tabular figures, so decimals line up.

Every string that came from a customer or the shop (names, address lines, item names, the
shop's order number, the link) is escaped with ``html.escape`` (quotes too) and isolated for
bidirectional text: inside ``<bdi>`` in the HTML, between FSI and PDI in the plain part when it
holds a bidi control character, so neither markup nor an RTL override in a name can change what
is around it. Plain string templates keep rendering cheap: a benchmark counts email CPU.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

TEXT_WIDTH = 64
# Bidi embedding, override and isolate controls, and the marks: what can reorder nearby text.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
FIRST_STRONG_ISOLATE, POP_DIRECTIONAL_ISOLATE = "\u2068", "\u2069"

FONT = "font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"
MUTED = "color:#6b7280"
ACCENT = "#1f4f8b"
CELL = "padding:10px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top"
AMOUNT = "text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums"
HEAD_CELL = f"padding:8px;border-bottom:2px solid #d1d5db;{MUTED};font-size:12px;text-transform:uppercase;" \
            "letter-spacing:0.04em;font-weight:bold"
SECTION = f"margin:28px 0 6px;font-size:12px;text-transform:uppercase;letter-spacing:0.04em;{MUTED}"


@dataclass(frozen=True)
class ItemLine:
    """One line of the order, its amounts already formatted in the order's currency."""

    name: str
    sku: str
    quantity: int
    unit_price: str
    line_total: str


@dataclass(frozen=True)
class EmailView:
    """Everything an order email shows, as text; ``intro`` holds ``{name}``."""

    subject: str
    heading: str
    intro: str
    customer_name: str
    reference: str
    placed_on: str
    items: tuple[ItemLine, ...]
    money: tuple[tuple[str, str], ...]          # (label, amount), the last one the total
    address: tuple[str, ...] | None             # None: the order ships nothing
    link: tuple[str, str] | None                # (label, url)
    seller_name: str
    seller_address: str
    order_id: str


def text_body(view: EmailView) -> str:
    """The plain-text part: the HTML's content, amounts flush right at ``TEXT_WIDTH``."""
    lines = [view.heading, "", view.intro.format(name=_isolated(view.customer_name)), "",
             f"Order {_isolated(view.reference)}, placed {view.placed_on}", ""]
    for item in view.items:
        lines.append(f"  {_isolated(item.name)}  {item.sku}")
        lines.append(_columns(f"      {item.quantity} × {item.unit_price}", item.line_total))
    lines.append("")
    lines += [_columns(f"  {label}", amount) for label, amount in view.money]
    if view.address:
        lines += ["", "Shipping to", *(f"  {_isolated(line)}" for line in view.address)]
    if view.link:
        lines += ["", view.link[0], f"  {view.link[1]}"]
    lines += ["", "-- ", _isolated(view.seller_name), _isolated(view.seller_address), f"Order id: {view.order_id}"]
    return "\n".join(lines) + "\n"


def _isolated(text: str) -> str:
    if BIDI_CONTROLS.isdisjoint(text):
        return text
    return f"{FIRST_STRONG_ISOLATE}{text}{POP_DIRECTIONAL_ISOLATE}"


def _columns(left: str, right: str) -> str:
    return left + " " * max(2, TEXT_WIDTH - len(left) - len(right)) + right


def html_body(view: EmailView) -> str:
    """The HTML part: a 600 px card of inline-styled tables (see the module docstring)."""
    content = (f'<h1 style="margin:0 0 12px;font-size:22px;line-height:1.3;color:#111827">{_e(view.heading)}</h1>'
               f'<p style="margin:0 0 16px;font-size:15px;line-height:1.5;color:#374151">'
               f'{_e(view.intro).format(name=_bdi(view.customer_name))}</p>'
               f'<p style="margin:0 0 20px;font-size:14px;{MUTED}">Order <strong style="color:#111827">'
               f'{_bdi(view.reference)}</strong>, placed {_e(view.placed_on)}</p>'
               f'{_items_table(view)}{_address_block(view.address)}{_link_block(view.link)}')
    return ('<!DOCTYPE html><html lang="en" dir="ltr"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<title>{_e(view.subject)}</title></head>'
            f'<body style="margin:0;padding:0;background:#f3f4f6;{FONT}">'
            '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
            'style="background:#f3f4f6"><tr><td align="center" style="padding:24px 12px">'
            '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="max-width:600px;'
            'background:#ffffff;border:1px solid #e5e7eb;border-radius:8px;border-collapse:separate">'
            f'<tr><td style="padding:18px 28px;border-bottom:3px solid {ACCENT};font-size:18px;font-weight:bold;'
            f'color:{ACCENT}">{_bdi(view.seller_name)}</td></tr>'
            f'<tr><td style="padding:28px">{content}</td></tr>'
            f'{_footer(view)}</table></td></tr></table></body></html>\n')


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _bdi(text: str) -> str:
    return f"<bdi>{_e(text)}</bdi>"


def _items_table(view: EmailView) -> str:
    head = (f'<tr><th align="left" style="{HEAD_CELL};text-align:left">Item</th>'
            + "".join(f'<th align="right" style="{HEAD_CELL};text-align:right">{label}</th>'
                      for label in ("Qty", "Price", "Total")) + "</tr>")
    rows = "".join(_item_row(item) for item in view.items)
    money = "".join(_money_row(label, amount, n == 0, n == len(view.money) - 1)
                    for n, (label, amount) in enumerate(view.money))
    return ('<table width="100%" cellpadding="0" cellspacing="0" '
            f'style="border-collapse:collapse;font-size:14px;color:#111827">{head}{rows}{money}</table>')


def _item_row(item: ItemLine) -> str:
    amounts = "".join(f'<td align="right" style="{CELL};{AMOUNT}">{_e(cell)}</td>'
                      for cell in (str(item.quantity), item.unit_price, item.line_total))
    return (f'<tr><td style="{CELL}">{_bdi(item.name)}<br>'
            f'<span style="font-size:12px;{MUTED}">{_e(item.sku)}</span></td>{amounts}</tr>')


def _money_row(label: str, amount: str, first: bool, last: bool) -> str:
    style = "padding:12px 8px 4px;border-top:2px solid #d1d5db;font-size:16px;font-weight:bold" if last \
        else f"padding:{12 if first else 6}px 8px 2px;{MUTED}"
    return (f'<tr><td colspan="3" align="right" style="{style};text-align:right">{_e(label)}</td>'
            f'<td align="right" style="{style};{AMOUNT}">{_e(amount)}</td></tr>')


def _address_block(address: tuple[str, ...] | None) -> str:
    if not address:
        return ""
    lines = "<br>".join(_bdi(line) for line in address)
    return (f'<h2 style="{SECTION}">Shipping to</h2>'
            f'<p style="margin:0;font-size:14px;line-height:1.5;color:#374151">{lines}</p>')


def _link_block(link: tuple[str, str] | None) -> str:
    if link is None:
        return ""
    label, url = _e(link[0]), _e(link[1])
    return (f'<p style="margin:28px 0 8px"><a href="{url}" style="display:inline-block;padding:12px 22px;'
            f'background:{ACCENT};color:#ffffff;font-weight:bold;font-size:15px;text-decoration:none;'
            f'border-radius:6px">{label}</a></p>'
            f'<p style="margin:0;font-size:12px;{MUTED};word-break:break-all">{url}</p>')


def _footer(view: EmailView) -> str:
    return (f'<tr><td style="padding:18px 28px;border-top:1px solid #e5e7eb;font-size:12px;line-height:1.5;{MUTED}">'
            f'{_bdi(view.seller_name)}<br>{_bdi(view.seller_address)}<br>'
            f'Order id: {_e(view.order_id)}</td></tr>')
