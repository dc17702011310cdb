"""The Overview's last hour, in headless Chromium: a chart per kind of attempts done, retrying
and failed per minute with p50/p95 durations, "nothing yet" for a kind without attempts, and
the live part updating itself (``static/live.js`` fetching ``/overview/live``) without a
reload while the handler's stores receive new attempts.

The console is ``ordertasks console``'s wiring (``console_from_settings``: SQLite and the
Cloud Tasks emulator) served over a real socket; the hour is written through the store ports
the way the handler writes it. Writes ``overview.png`` to ``CONSOLE_SCREENSHOTS_DIR`` when set.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ordertasks.handlers.backends.memory import MemoryAttemptLog
from ordertasks.handlers.ports import AttemptFailure, AttemptRecord, Stores
from ordertasks.infra.console import create_app
from ordertasks.infra.console.overview import ClosedMinutes
from tests.console.conftest import ConsoleUnderTest, failure
from tests.console.test_browser import snap
from tests.console.served import served
from tests.console.test_retrying import shots_dir
from tests.support.browser import headless_chromium

TTL = timedelta(days=35)
QUIET = "request_review"          # no attempt in the seeded hour: "nothing yet" until the test writes some




@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with headless_chromium("the console's browser tests drive Debian's headless Chromium") as instance:
        yield instance


def attempt(order_id: str, kind: str, started: datetime, ms: int, outcome: str, answer: str,
            number: int = 1) -> AttemptRecord:
    return AttemptRecord(order_id, kind, number, started, ms, outcome, answer, started + TTL)


def handled(stores: Stores, order_id: str, kind: str, started: datetime, ms: int, *, retried: bool = False,
            fails: bool = False) -> None:
    """One effect as the handler leaves it: the idempotency record and each attempt in the log."""
    stores.effects.claim_effect(order_id, kind, started, 60, TTL.total_seconds())
    if retried or fails:
        error = "warehouse answered 503: warehouse is down"
        final = AttemptFailure(1, 3, error, None if fails else started + timedelta(seconds=30))
        stores.effects.release_effect(order_id, kind, started + timedelta(milliseconds=ms), final)
        stores.attempts.record_attempt(attempt(order_id, kind, started, ms, "failed" if fails else "retry",
                                               f"HTTP 503 {error}"))
        if fails:
            return
        started += timedelta(seconds=30)
        stores.effects.claim_effect(order_id, kind, started, 60, TTL.total_seconds())
    stores.effects.complete_effect(order_id, kind, {"status": 200}, started + timedelta(milliseconds=ms))
    stores.attempts.record_attempt(attempt(order_id, kind, started, ms, "done", '{"status": 200}', 2 if retried else 1))


def seed_hour(cut: ConsoleUnderTest, now: datetime) -> None:
    """An hour of a small shop: an order every ~90 s, its immediate effects, a flaky warehouse."""
    rng = random.Random(31)
    base_ms = {"send_confirmation_email": 180, "generate_invoice": 420, "record_analytics": 35, "notify_warehouse": 260}
    for n in range(38):
        order_id = f"ord-live-{n:03d}"
        placed = now - timedelta(minutes=58) + timedelta(seconds=n * 90 + rng.randint(0, 40))
        for kind, ms in base_ms.items():
            took = int(ms * rng.lognormvariate(0, 0.45))
            warehouse = kind == "notify_warehouse"
            handled(cut.store, order_id, kind, placed, took, retried=warehouse and n % 6 == 2,
                    fails=warehouse and n == 20)
        if n == 20:
            cut.store.failed.record_failure(failure(order_id, "notify_warehouse", catalog=cut.console.catalog))


def kind_card(page: Any, kind: str) -> Any:
    return page.locator(f".live-kind[data-kind='{kind}']")


def test_the_last_hour_has_a_chart_per_kind_and_nothing_yet_where_nothing_ran(cut: ConsoleUnderTest) -> None:
    seed_hour(cut, datetime.now(UTC))
    page = cut.client.get("/overview/live")
    assert page.status_code == 200 and "<html" not in page.text          # a fragment, for live.js
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    warehouse = re.search(r'data-kind="notify_warehouse">(.*?)</div>\s*</div>', page.text, re.S)
    assert warehouse and "<svg" in warehouse.group(1) and "bar-retrying" in warehouse.group(1)
    assert re.search(r'class="p50">\d+ ms<', warehouse.group(1)), warehouse.group(1)
    quiet = re.search(rf'data-kind="{QUIET}">(.*?)</div>\s*</div>', page.text, re.S)
    assert quiet and "nothing yet" in quiet.group(1) and "<svg" not in quiet.group(1)
    index = cut.client.get("/")
    assert '<script src="/static/live.js" defer></script>' in index.text and "http-equiv" not in index.text
    assert cut.client.get("/static/live.js").status_code == 200


def test_the_overview_updates_itself_without_a_reload(cut: ConsoleUnderTest, browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    seed_hour(cut, datetime.now(UTC))
    with served(create_app(cut.console)) as url:
        context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=url)
        page = context.new_page()
        page.set_default_timeout(20_000)
        loads: list[str] = []
        page.on("load", lambda _: loads.append(page.url))
        page.goto("/")
        assert kind_card(page, QUIET).locator(".empty").inner_text() == "nothing yet"
        done_before = kind_card(page, "notify_warehouse").locator(".count-done").inner_text()
        page.evaluate("document.body.dataset.marker = 'kept'")

        for i in range(3):                            # new work lands while the page is open
            handled(cut.store, f"ord-new-{i}", QUIET, datetime.now(UTC), 90 + 40 * i)
            handled(cut.store, f"ord-new-{i}", "notify_warehouse", datetime.now(UTC), 200)

        # the live part's own fetches bring it in (the CSP forbids eval: no wait_for_function)
        expect(kind_card(page, QUIET).locator(".count-done")).to_have_text("3 done", timeout=20_000)
        assert kind_card(page, QUIET).locator("svg.live-chart").count() == 1
        assert kind_card(page, QUIET).locator(".empty").count() == 0
        assert kind_card(page, QUIET).locator(".p50").inner_text().endswith("ms")
        assert kind_card(page, "notify_warehouse").locator(".count-done").inner_text() != done_before
        assert page.evaluate("document.body.dataset.marker") == "kept"    # the same document: no reload
        assert loads == [page.url] and int(page.locator(".live-body").get_attribute("data-live-refreshes")) >= 1
        page.reload()                                  # the tables below the live part are as of a load
        snap(page, shots_dir(tmp_path), "overview")
        context.close()


def test_without_javascript_the_page_is_as_rendered(cut: ConsoleUnderTest, browser: Any) -> None:
    seed_hour(cut, datetime.now(UTC))
    with served(create_app(cut.console)) as url:
        context = browser.new_context(base_url=url, java_script_enabled=False)
        page = context.new_page()
        page.goto("/")
        assert kind_card(page, "notify_warehouse").locator("svg.live-chart").count() == 1
        assert page.locator("meta[http-equiv]").count() == 0
        context.close()


class CountingLog:
    """An ``AttemptLog`` that remembers which minutes each ``minute_tallies`` call asked for."""

    def __init__(self) -> None:
        self.log = MemoryAttemptLog()
        self.asked: list[tuple[datetime, datetime]] = []

    def minute_tallies(self, since: datetime, until: datetime) -> Any:
        self.asked.append((since, until))
        return self.log.minute_tallies(since, until)


def test_minutes_already_closed_are_read_once() -> None:
    counting, hour = CountingLog(), datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
    counting.log.record_attempt(attempt("o-1", "notify_warehouse", hour + timedelta(minutes=10), 50, "done", "ok"))
    closed = ClosedMinutes()
    first = closed.tallies(counting, hour, hour + timedelta(minutes=60))           # type: ignore[arg-type]
    counting.log.record_attempt(attempt("o-2", "notify_warehouse", hour + timedelta(minutes=59), 50, "done", "ok"))
    second = closed.tallies(counting, hour + timedelta(minutes=1), hour + timedelta(minutes=61))  # type: ignore[arg-type]
    assert [t.minute.minute for t in first] == [10] and [t.minute.minute for t in second] == [10, 59]
    assert counting.asked[2] == (hour + timedelta(minutes=58), hour + timedelta(minutes=59))   # only the minute that closed
