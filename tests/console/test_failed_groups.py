"""The Failed tasks page in headless Chromium: the whole reason in the list, failures grouped by
error type and normalised message with counts, the error-type ``<select>``, ticking entries to
replay or resolve them, and replaying a group, each behind its confirm page and CSRF token.

The console runs over SQLite and the Cloud Tasks emulator (``cut``), served in a thread;
replays are created in the emulator's queues.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ordertasks.handlers.ports import FailedFilter
from ordertasks.producer.failure_groups import group_failures, normalise
from tests.console.conftest import ConsoleUnderTest, failure
from tests.console.served import served
from tests.console.test_browser import browser, follow, shots, snap  # noqa: F401 - fixtures

SKU = "warehouse https://warehouse.example/notify refused the request with 422: unknown SKU '{sku}' in {order}"
DOWN = "warehouse answered 503 after {n}.0 s"
REJECTED = ["ord_sku0001", "ord_sku0002", "ord_sku0003"]
DOWN_ORDERS = ["ord_down001", "ord_down002"]


def record(cut: ConsoleUnderTest) -> None:
    """Three unknown-SKU rejections, two outages, a rejected invoice and one resolved bad payload."""
    catalog = cut.console.catalog
    for n, order in enumerate(REJECTED):
        cut.store.failed.record_failure(failure(order, "notify_warehouse", SKU.format(sku=f"MUG-{n}", order=order),
                                                catalog=catalog))
    for n, order in enumerate(DOWN_ORDERS):
        cut.store.failed.record_failure(failure(order, "notify_warehouse", DOWN.format(n=10 + n),
                                                "DependencyUnavailable", catalog=catalog))
    cut.store.failed.record_failure(failure("ord_inv0001", "generate_invoice", "no VAT rate for country \"XX\"",
                                            catalog=catalog))
    entry = cut.store.failed.record_failure(failure("ord_bad0001", "record_analytics", "field total missing",
                                                    "InvalidPayload", catalog=catalog))
    cut.store.failed.update_failed(entry.id, "resolved", entry.last_failed_at, resolved_by="ana", note="fixed")


@pytest.fixture
def page(browser: Any, cut: ConsoleUnderTest) -> Iterator[Any]:  # noqa: F811 - the imported fixture
    record(cut)
    with served(cut.client.application) as url:
        context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=url)
        tab = context.new_page()
        tab.set_default_timeout(20_000)
        try:
            yield tab
        finally:
            context.close()


def groups_shown(page: Any) -> list[tuple[str, str, str]]:
    """(count, error type, message) of each row of the groups table."""
    rows = page.locator("table.groups tbody tr")
    return [tuple(rows.nth(i).locator("td").nth(c).inner_text() for c in range(3)) for i in range(rows.count())]


def statuses(cut: ConsoleUnderTest, orders: list[str], kind: str = "notify_warehouse") -> list[str]:
    return [cut.store.failed.get_failed(f"{order}:{kind}").status for order in orders]


def test_the_list_groups_failures_and_shows_each_whole_reason(page: Any, cut: ConsoleUnderTest, shots: Path) -> None:  # noqa: F811
    page.goto("/failed")
    reason = page.locator("tr", has=page.get_by_role("link", name="ord_sku0002:notify_warehouse")).locator("td.reason")
    assert reason.inner_text() == "Rejected: " + SKU.format(sku="MUG-1", order="ord_sku0002")    # nothing cut off
    follow(page, page.get_by_role("link", name="Grouped by error →"))
    sku_message = normalise(SKU.format(sku="X", order="ord_x"))
    assert sku_message == "warehouse https://warehouse.example/notify refused the request with <n>: unknown SKU <value> in <order>"
    assert groups_shown(page) == [("3", "Rejected", sku_message),
                                  ("2", "DependencyUnavailable", "warehouse answered <n> after <n> s"),
                                  ("1", "Rejected", "no VAT rate for country <value>")]
    assert "All 6 counted" in page.locator("section.failure-groups .hint").inner_text()
    snap(page, shots, "failed-groups")


def test_the_error_type_filter_is_a_select_of_the_types_present(page: Any) -> None:
    page.goto("/failed")
    choice = page.get_by_label("Error type")
    assert choice.locator("option").all_inner_texts() == ["any", "DependencyUnavailable", "InvalidPayload", "Rejected"]
    choice.select_option("DependencyUnavailable")
    follow(page, page.get_by_role("button", name="Filter"))
    assert "error_type=DependencyUnavailable" in page.url
    assert page.locator(".summary strong").inner_text() == "2"
    assert page.get_by_label("Error type").input_value() == "DependencyUnavailable"


def test_replay_two_selected(page: Any, cut: ConsoleUnderTest, shots: Path) -> None:  # noqa: F811
    page.goto("/failed")
    for order in REJECTED[:2]:
        page.get_by_label(f"select {order}:notify_warehouse").check()
    follow(page, page.get_by_role("button", name="Replay selected…"))
    assert page.locator("h1").inner_text() == "Replay 2 failed task(s)?"
    snap(page, shots, "failed-selected-confirm")
    follow(page, page.get_by_role("button", name="Replay 2 task(s)"))
    assert "bulk replay: 2 of 2 replayed" in page.locator(".flash").all_inner_texts()
    assert statuses(cut, REJECTED) == ["replayed", "replayed", "open"]


def test_resolve_selected_with_a_note(page: Any, cut: ConsoleUnderTest) -> None:
    page.goto("/failed")
    page.get_by_label("select ord_inv0001:generate_invoice").check()
    page.get_by_label("select ord_sku0003:notify_warehouse").check()
    follow(page, page.get_by_role("button", name="Resolve selected…"))
    assert page.locator("h1").inner_text() == "Resolve 2 failed task(s)?"
    page.get_by_label("Note (what was done; required)").fill("SKU added to the warehouse catalogue")
    follow(page, page.get_by_role("button", name="Resolve 2 task(s)"))
    assert "bulk resolve: 2 of 2 resolved by console" in page.locator(".flash").all_inner_texts()
    assert cut.store.failed.get_failed("ord_inv0001:generate_invoice").note == "SKU added to the warehouse catalogue"
    assert statuses(cut, ["ord_sku0003"]) == ["resolved"]


def test_replay_a_group(page: Any, cut: ConsoleUnderTest, shots: Path) -> None:  # noqa: F811
    page.goto("/failed/groups")
    row = page.locator("table.groups tbody tr", has_text="DependencyUnavailable")
    follow(page, row.get_by_role("link", name="Replay group…"))
    assert page.locator("h1").inner_text() == "Replay 2 failed task(s)?"
    assert "warehouse answered <n> after <n> s" in page.locator(".confirm").inner_text()
    snap(page, shots, "failed-group-confirm")
    follow(page, page.get_by_role("button", name="Replay 2 task(s)"))
    assert "bulk replay: 2 of 2 replayed" in page.locator(".flash").all_inner_texts()
    assert statuses(cut, DOWN_ORDERS) == ["replayed", "replayed"]
    assert statuses(cut, REJECTED) == ["open", "open", "open"]         # other groups untouched
    page.goto("/failed/groups")
    assert [g[1] for g in groups_shown(page)] == ["Rejected", "Rejected"]


def test_a_bounded_grouping_says_so(cut: ConsoleUnderTest) -> None:
    """Groups are read from at most ``bound`` entries, the most recent; the rest are only counted."""
    record(cut)
    grouping = group_failures(cut.store.failed, FailedFilter(), bound=4)
    assert (grouping.read, grouping.matching, grouping.capped) == (4, 6, True)
    assert sum(g.count for g in grouping.groups) == 4
    page = cut.client.get("/failed/groups").text
    assert "All 6 counted (at most 500, the most recent, are read)" in " ".join(page.split())
