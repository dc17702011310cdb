"""What an order email shows: sent through a real aiosmtpd server and parsed back.

A styled HTML part and a plain-text part with the same content; the human order reference in
the subject; the shipping address when there is one; amounts in cells aligned right with their
currency's decimals; every customer or shop string escaped; the review link from the catalog.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ordertasks.handlers.config import CatalogError, EmailConfig, load_catalog
from ordertasks.handlers.contract import OrderSnapshot
from ordertasks.handlers.kind import EffectContext
from ordertasks.handlers.order_reference import order_reference
from ordertasks.handlers.registry import KindRegistry
from tests.effects.conftest import SmtpServer
from tests.effects.orders import digital_order, eur_order, jpy_order, kwd_order, task_for

ORDER_ID = "ord_gjm62k4q7w3xh5mrtb2a"
REVIEW_URL = "https://shop.example/review/{order_id}?from=email&lang=en"
KINDS = KindRegistry.from_catalog(load_catalog())
BLOCKS = frozenset({"p", "br", "td", "th", "tr", "h1", "h2", "table"})
HOSTILE_NAME = "<script>alert(\"x\")</script> O'Brien \u202eevil\u202c & Co"


class Html(HTMLParser):
    """The tags, attributes and visible text of an HTML part."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.cells: list[tuple[dict[str, str], str]] = []     # (td attributes, its text)
        self.text: list[str] = []
        self._open_cell: tuple[dict[str, str], list[str]] | None = None
        self._in_title = False
        self.feed(source)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag in BLOCKS:
            self.text.append(" ")
        self.tags.append((tag, attributes))
        self._in_title = tag == "title"
        if tag == "td":
            self._open_cell = (attributes, [])

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False
        if tag in BLOCKS:
            self.text.append(" ")
        if tag == "td" and self._open_cell is not None:
            self.cells.append((self._open_cell[0], "".join(self._open_cell[1]).strip()))
            self._open_cell = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            return
        self.text.append(data)
        if self._open_cell is not None:
            self._open_cell[1].append(data)

    def visible(self) -> str:
        """The text a reader sees, blocks apart, white space collapsed."""
        return " ".join("".join(self.text).split())

    def words(self) -> set[str]:
        """Every visible word."""
        return set(self.visible().split())

    def links(self) -> list[str]:
        """Every ``href``, unescaped."""
        return [attrs["href"] for tag, attrs in self.tags if tag == "a"]


def _send(kind: str, order: OrderSnapshot, smtp: SmtpServer, make_context: Callable[..., EffectContext],
          order_id: str = ORDER_ID, email: EmailConfig | None = None) -> EmailMessage:
    ctx = make_context(mailer=smtp.mailer(), email=email or EmailConfig())
    KINDS.kind(kind).perform(task_for(kind, order_id, order), ctx)
    msg = message_from_bytes(smtp.inbox.messages[-1], policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _bodies(msg: EmailMessage) -> tuple[str, str]:
    assert msg.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in msg.iter_parts()] == ["text/plain", "text/html"]
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text is not None and html is not None
    # The wire's CRLF line ends, as a mail client shows them.
    return text.get_content().replace("\r\n", "\n"), html.get_content()


def _amount_cells(html: str, amounts: list[str]) -> list[dict[str, str]]:
    cells = [attrs for attrs, text in Html(html).cells if text in amounts]
    assert sorted({text for _, text in Html(html).cells if text in amounts}) == sorted(set(amounts))
    return cells


# --- the subject: a human reference, never the internal id ------------------------------------


def test_the_subject_shows_the_human_reference_not_the_internal_id(
        smtp_server: SmtpServer, make_context: Callable[..., EffectContext]) -> None:
    msg = _send("send_confirmation_email", eur_order(), smtp_server, make_context)
    assert msg["Subject"] == "Your order #GJM6-2K4Q is confirmed"
    assert ORDER_ID not in msg["Subject"] and msg["X-Ordertasks-Order"] == ORDER_ID
    text, html = _bodies(msg)
    for body in (text, html):
        assert "#GJM6-2K4Q" in body and f"Order id: {ORDER_ID}" in body     # the full id, for support


def test_the_shops_own_order_number_comes_first(smtp_server: SmtpServer,
                                                 make_context: Callable[..., EffectContext]) -> None:
    msg = _send("send_followup_email", digital_order(order_number=10023), smtp_server, make_context)
    assert msg["Subject"] == "Your order #10023 is on its way"
    assert "#10023" in _bodies(msg)[0]
    msg = _send("request_review", digital_order(order_number="#SO-77"), smtp_server, make_context)
    assert msg["Subject"] == "How did we do with order #SO-77?"


@pytest.mark.parametrize("number", ["", "  ", "x" * 41, "=?utf-8?b?QmNjOiBldmVAeC55?=", "10\r\nBcc: eve@x.y",
                                    "10\u202e23", True, -3, 1.5, ["10023"]])
def test_an_order_number_that_is_not_plain_text_falls_back_to_the_derived_reference(
        number: object, smtp_server: SmtpServer, make_context: Callable[..., EffectContext]) -> None:
    msg = _send("send_confirmation_email", digital_order(order_number=number), smtp_server, make_context)
    assert msg["Subject"] == "Your order #GJM6-2K4Q is confirmed"
    assert sorted(k.lower() for k in msg.keys()) == sorted(
        ["from", "to", "subject", "date", "message-id", "x-ordertasks-order", "x-ordertasks-kind", "content-type",
         "mime-version"])


def test_the_reference_of_other_ids() -> None:
    assert order_reference("ord_abcdefgh234567abcdef") == "#ABCD-EFGH"
    assert order_reference("A1001") == "#A1001"                # a shop's own id is already human
    assert order_reference("ord_short") == "#ord_short"
    assert order_reference(ORDER_ID, "SO-1") == "#SO-1"


# --- the bodies: the same content twice ---------------------------------------------------------


def test_html_and_text_parts_carry_the_same_content(smtp_server: SmtpServer,
                                                     make_context: Callable[..., EffectContext]) -> None:
    msg = _send("request_review", eur_order(), smtp_server, make_context, email=EmailConfig(REVIEW_URL))
    text, html = _bodies(msg)
    link = f"https://shop.example/review/{ORDER_ID}?from=email&lang=en"
    expected = ["Hello Zoë Müller-Łukasiewicz,", "#GJM6-2K4Q", "1 March 2024",
                "Oak desk “Nordic”", "DESK-OAK", "Desk lamp <brass> (spare)", "Cable clip", "CABLE-2M",
                "€999.00", "€49.95", "€99.90", "€1.20", "€3.60",
                "Subtotal", "€1,152.45", "Tax", "€218.97", "Shipping", "€12.50", "Total", "€1,383.92",
                "Shipping to", "Rue de l'Église 7", "Bâtiment B", "69002 Lyon", "FR",
                "Write a review", link, "Grünwald & Söhne GmbH", "Marktstraße 1, 10115 Berlin, DE", ORDER_ID]
    visible = Html(html).visible()
    for fragment in expected:
        assert fragment in text, fragment
        assert fragment in visible, fragment
    # Word for word: the HTML shows nothing the text lacks but its column headings, and the
    # text nothing the HTML lacks but its separators.
    html_words, text_words = Html(html).words(), set(text.split())
    assert html_words - text_words == {"Item", "Qty", "Price"}
    assert text_words - html_words == {"×", "--"}


def test_amounts_sit_in_right_aligned_cells_with_tabular_figures(
        smtp_server: SmtpServer, make_context: Callable[..., EffectContext]) -> None:
    _, html = _bodies(_send("send_confirmation_email", eur_order(), smtp_server, make_context))
    amounts = ["€999.00", "€49.95", "€99.90", "€1.20", "€3.60",             # unit prices, line totals
               "€1,152.45", "€218.97", "€12.50", "€1,383.92"]               # the four sums
    for attrs in _amount_cells(html, amounts):
        assert "text-align:right" in attrs["style"] and attrs["align"] == "right"
        assert "white-space:nowrap" in attrs["style"] and "tabular-nums" in attrs["style"]
    assert "<style" not in html and "<img" not in html and "<link" not in html    # inline styles, no images


@pytest.mark.parametrize(("order", "amounts", "wrong"), [
    (jpy_order(), ["¥1,200", "¥3,600", "¥360", "¥500", "¥4,460"], "¥3,600.0"),
    (kwd_order(), ["4.125 KWD", "8.250 KWD", "1.500 KWD", "9.750 KWD", "0.488 KWD", "2.107 KWD", "12.345 KWD"],
     "12.3450"),
], ids=["JPY", "KWD"])
def test_amounts_have_their_currencys_decimals(order: OrderSnapshot, amounts: list[str], wrong: str,
                                               smtp_server: SmtpServer,
                                               make_context: Callable[..., EffectContext]) -> None:
    text, html = _bodies(_send("send_confirmation_email", order, smtp_server, make_context))
    for attrs in _amount_cells(html, amounts):
        assert "text-align:right" in attrs["style"]
    for amount in amounts:
        assert amount in text
    assert wrong not in text and wrong not in html


@pytest.mark.parametrize(("order", "amount"), [(eur_order(), r"€[\d,]+\.\d\d"), (kwd_order(), r"[\d,]+\.\d{3} KWD")],
                         ids=["EUR", "KWD"])
def test_the_plain_text_amounts_line_up(order: OrderSnapshot, amount: str, smtp_server: SmtpServer,
                                        make_context: Callable[..., EffectContext]) -> None:
    text, _ = _bodies(_send("send_confirmation_email", order, smtp_server, make_context))
    money_lines = [line for line in text.splitlines() if re.search(rf"\s{amount}$", line)]
    assert len(money_lines) == len(order.items) + 4                 # each line total, then the four sums
    assert len({len(line) for line in money_lines}) == 1


# --- the shipping address ----------------------------------------------------------------------


def test_the_address_is_shown_when_the_order_has_one(smtp_server: SmtpServer,
                                                      make_context: Callable[..., EffectContext]) -> None:
    for kind in ("send_confirmation_email", "send_followup_email", "request_review"):
        text, html = _bodies(_send(kind, eur_order(), smtp_server, make_context))
        for body in (text, html):
            assert "Shipping to" in body and "69002 Lyon" in body and "Bâtiment B" in body, kind


def test_no_address_block_for_an_order_that_ships_nothing(smtp_server: SmtpServer,
                                                           make_context: Callable[..., EffectContext]) -> None:
    for order in (digital_order(), kwd_order()):
        text, html = _bodies(_send("send_confirmation_email", order, smtp_server, make_context))
        for body in (text, html):
            assert "Shipping to" not in body
        assert "Shipping" in text           # the shipping cost line stays


# --- escaping ----------------------------------------------------------------------------------


def _hostile_order() -> OrderSnapshot:
    raw = eur_order(customer_name=HOSTILE_NAME).model_dump(mode="json")
    raw["shipping_address"]["line1"] = '"><img src=x onerror=alert(1)> Rue \u202eRTL'
    raw["items"][0]["name"] = "<b onmouseover='x'>Desk</b> & \"chair\""
    raw["metadata"] = {"order_number": "<i>42</i>"}
    return OrderSnapshot.model_validate(raw)


def test_every_customer_and_shop_string_is_escaped_in_html(smtp_server: SmtpServer,
                                                            make_context: Callable[..., EffectContext]) -> None:
    msg = _send("request_review", _hostile_order(), smtp_server, make_context, email=EmailConfig(REVIEW_URL))
    text, html = _bodies(msg)
    parsed = Html(html)
    tags = {tag for tag, _ in parsed.tags}
    assert tags <= {"html", "head", "meta", "title", "body", "table", "tr", "td", "th", "h1", "h2", "p", "strong",
                    "br", "span", "bdi", "a"}
    assert not [name for _, attrs in parsed.tags for name in attrs if name.startswith("on")]
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; O&#x27;Brien" in html
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;b onmouseover=&#x27;x&#x27;&gt;Desk&lt;/b&gt; &amp; &quot;chair&quot;" in html
    assert "#&lt;i&gt;42&lt;/i&gt;" in html and msg["Subject"] == "How did we do with order #<i>42</i>?"
    # An RTL override cannot reorder what follows it: each customer string is isolated.
    assert "<bdi>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; O&#x27;Brien \u202eevil\u202c &amp; Co</bdi>" in html
    assert f"\u2068{HOSTILE_NAME}\u2069," in text
    assert '\u2068"><img src=x onerror=alert(1)> Rue \u202eRTL\u2069' in text
    assert "Hello Zoë" in _bodies(_send("send_confirmation_email", eur_order(), smtp_server, make_context))[0]


# --- the review link ---------------------------------------------------------------------------


def test_the_review_request_links_to_the_catalogs_review_url(smtp_server: SmtpServer,
                                                              make_context: Callable[..., EffectContext]) -> None:
    msg = _send("request_review", kwd_order(), smtp_server, make_context, email=EmailConfig(REVIEW_URL))
    text, html = _bodies(msg)
    link = f"https://shop.example/review/{ORDER_ID}?from=email&lang=en"
    assert Html(html).links() == [link]
    assert f'href="https://shop.example/review/{ORDER_ID}?from=email&amp;lang=en"' in html
    assert f"Write a review\n  {link}\n" in text


def test_the_order_id_is_url_encoded_in_the_link() -> None:
    config = EmailConfig("https://shop.example/r/{order_id}?again={order_id}")
    assert config.review_link("A-1_b") == "https://shop.example/r/A-1_b?again=A-1_b"
    assert config.review_link("a b/c?d&e") == "https://shop.example/r/a%20b%2Fc%3Fd%26e?again=a%20b%2Fc%3Fd%26e"
    assert EmailConfig().review_link("A1") is None


def test_without_a_review_url_the_request_says_nothing_about_a_link(
        smtp_server: SmtpServer, make_context: Callable[..., EffectContext]) -> None:
    msg = _send("request_review", eur_order(), smtp_server, make_context)
    text, html = _bodies(msg)
    assert Html(html).links() == [] and "http" not in text
    assert "review" not in text.lower() and "Write a review" not in html
    assert msg["Subject"] == "How did we do with order #GJM6-2K4Q?"


def test_only_the_review_request_carries_the_link(smtp_server: SmtpServer,
                                                   make_context: Callable[..., EffectContext]) -> None:
    for kind in ("send_confirmation_email", "send_followup_email"):
        text, html = _bodies(_send(kind, eur_order(), smtp_server, make_context, email=EmailConfig(REVIEW_URL)))
        assert Html(html).links() == [] and "shop.example/review" not in text, kind


def test_the_message_id_does_not_depend_on_the_link(smtp_server: SmtpServer,
                                                     make_context: Callable[..., EffectContext]) -> None:
    with_link = _send("request_review", eur_order(), smtp_server, make_context, email=EmailConfig(REVIEW_URL))
    without = _send("request_review", eur_order(), smtp_server, make_context)
    assert with_link["Message-ID"] == without["Message-ID"]


# --- the catalog setting -----------------------------------------------------------------------


def _catalog(tmp_path: Path, email_table: str) -> Path:
    path = tmp_path / "tasks.toml"
    path.write_text(f'extends = "builtin"\n\n{email_table}\n', encoding="utf-8")
    return path


def test_the_catalog_gives_the_review_url(tmp_path: Path) -> None:
    catalog = load_catalog(_catalog(tmp_path, '[email]\nreview_url = "https://shop.example/review/{order_id}"'))
    assert catalog.email.review_link("ord_1") == "https://shop.example/review/ord_1"
    assert load_catalog().email == EmailConfig()                    # the shipped catalog sets none
    assert load_catalog(_catalog(tmp_path, "[email]")).email == EmailConfig()


@pytest.mark.parametrize(("table", "says"), [
    ('review_url = "shop.example/review/{order_id}"', "absolute http:// or https:// URL"),
    ('review_url = "ftp://shop.example/{order_id}"', "absolute http:// or https:// URL"),
    ('review_url = "https:///review/{order_id}"', "absolute http:// or https:// URL"),
    ('review_url = "https://shop.example/review/{id}"', "no placeholder but {order_id}"),
    ('review_url = "https://shop.example/review/{order_id}}"', "no placeholder but {order_id}"),
    ('review_url = "https://shop.example/${SHOP}/{order_id}"', "no placeholder but {order_id}"),
    ('review_url = "https://shop.example/my review/{order_id}"', "spaces or control characters"),
    ('review_url = "https://shop.example/\\r\\nX: y"', "spaces or control characters"),
    ('review_url = ""', "must be a URL"),
    ("review_url = 42", "must be a URL"),
    ('review_link = "https://shop.example/"', "unknown setting 'review_link'; [email] takes review_url"),
])
def test_a_bad_review_url_stops_the_catalog_naming_the_line(tmp_path: Path, table: str, says: str) -> None:
    path = _catalog(tmp_path, f"[email]\n{table}")
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:") and "[email]" in message and says in message
    assert "https://shop.example/review/{order_id}" in message or "unknown setting" in message
