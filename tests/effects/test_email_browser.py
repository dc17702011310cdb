"""Order emails as a reader sees them: the HTML part of a message a real SMTP server received,
rendered in Debian's headless Chromium (driven by Playwright, launched as the console's browser
tests launch it).

Screenshots go to a temporary directory, or to ``EMAIL_SCREENSHOTS_DIR`` when set:
``EMAIL_SCREENSHOTS_DIR=docs pytest tests/effects/test_email_browser.py`` refreshes
``docs/email-confirmation.png`` and ``docs/email-review.png`` (look at them before committing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from ordertasks.handlers.config import EmailConfig, load_catalog
from ordertasks.handlers.contract import OrderSnapshot
from ordertasks.handlers.kind import EffectContext
from ordertasks.handlers.registry import KindRegistry
from tests.effects.conftest import SmtpServer
from tests.effects.orders import eur_order, kwd_order, task_for
from tests.support.browser import headless_chromium, screenshot_dir

ORDER_ID = "ord_gjm62k4q7w3xh5mrtb2a"
REVIEW = EmailConfig("https://shop.example/review/{order_id}")
KINDS = KindRegistry.from_catalog(load_catalog())

# Per amount cell: its computed alignment and where its text ends (a Range, not the cell's box).
AMOUNT_CELLS = """() => [...document.querySelectorAll('td')]
  .filter(td => /^(€|¥)?[\\d,]+(\\.\\d+)?( [A-Z]{3})?$/.test(td.textContent.trim()))
  .map(td => { const range = document.createRange(); range.selectNodeContents(td);
               return {text: td.textContent.trim(), align: getComputedStyle(td).textAlign,
                       column: [...td.parentElement.cells].slice(0, td.cellIndex).reduce((n, c) => n + c.colSpan, 0),
                       right: Math.round(range.getBoundingClientRect().right)}; })"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with headless_chromium("the email rendering test drives Debian's headless Chromium") as instance:
        yield instance


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshot_dir(tmp_path_factory, "EMAIL_SCREENSHOTS_DIR", "email-screenshots")


def _html_received(kind: str, order: OrderSnapshot, smtp: SmtpServer, make_context: Callable[..., EffectContext],
                   email: EmailConfig = EmailConfig()) -> str:
    KINDS.kind(kind).perform(task_for(kind, ORDER_ID, order), make_context(mailer=smtp.mailer(), email=email))
    part = message_from_bytes(smtp.inbox.messages[-1], policy=policy.default).get_body(("html",))
    assert part is not None
    content: str = part.get_content()
    return content


def _open(browser: Any, html: str, width: int) -> Any:
    page = browser.new_page(viewport={"width": width, "height": 700})
    page.set_content(html)
    return page


@pytest.mark.parametrize(("kind", "order", "shot"), [
    ("send_confirmation_email", eur_order(), "email-confirmation.png"),
    ("request_review", kwd_order(), "email-review.png"),
], ids=["confirmation-EUR", "review-KWD"])
def test_the_email_renders_with_amounts_lined_up_on_the_right(
        kind: str, order: OrderSnapshot, shot: str, browser: Any, shots: Path, smtp_server: SmtpServer,
        make_context: Callable[..., EffectContext]) -> None:
    page = _open(browser, _html_received(kind, order, smtp_server, make_context, REVIEW), 680)
    cells = page.evaluate(AMOUNT_CELLS)
    assert len(cells) == 3 * len(order.items) + 4                  # qty, price, total per item; four sums
    assert {cell["align"] for cell in cells} == {"right"}
    totals = [cell["right"] for cell in cells if cell["column"] == 3]
    assert len(totals) == len(order.items) + 4 and max(totals) - min(totals) <= 1, totals
    assert page.evaluate("document.images.length + document.scripts.length") == 0
    assert page.evaluate("document.querySelector('table table').getBoundingClientRect().width") <= 600
    links = page.evaluate("[...document.links].map(a => a.href)")
    assert links == ([f"https://shop.example/review/{ORDER_ID}"] if kind == "request_review" else [])
    page.screenshot(path=str(shots / shot), full_page=True)
    page.close()


def test_a_phone_width_needs_no_sideways_scrolling(browser: Any, smtp_server: SmtpServer,
                                                   make_context: Callable[..., EffectContext]) -> None:
    page = _open(browser, _html_received("send_confirmation_email", eur_order(), smtp_server, make_context), 360)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.close()


def test_a_hostile_name_is_text_in_the_browser(browser: Any, smtp_server: SmtpServer,
                                               make_context: Callable[..., EffectContext]) -> None:
    name = "<script>document.title='owned'</script><img src=x onerror=\"document.title='owned'\"> \u202eEve"
    page = _open(browser, _html_received("send_confirmation_email", eur_order(customer_name=name), smtp_server,
                                         make_context), 680)
    assert page.evaluate("document.scripts.length + document.images.length") == 0
    assert page.title() == "Your order #GJM6-2K4Q is confirmed"
    greeting = page.evaluate("document.querySelector('h1 + p').innerText")
    assert greeting.startswith(f"Hello {name}, we received")
    # The override stays inside its <bdi>: the words after the name read left to right.
    assert page.evaluate("getComputedStyle(document.querySelector('h1 + p bdi')).unicodeBidi") == "isolate"
    page.close()
