"""An order's timeline lists every attempt the handler answered, successful ones included, with
its duration and answer: against a real ``ordertasks dev`` stack whose warehouse is flaky (the
first new notification gets a 503, the next is accepted), in headless Chromium.

Writes ``order-timeline.png`` to ``CONSOLE_SCREENSHOTS_DIR`` when set (docs/console/).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.test_browser import console_url, snap
from tests.console.test_live_overview import browser  # noqa: F401  (the module's Chromium)
from tests.console.test_retrying import shots_dir
from tests.devstack.conftest import DevStack, place_order, start_dev
from tests.support.samples import fast_catalog
from tests.support.servers import free_port, http_ok, wait_until

PARTS = ("emulator", "handler", "checkout", "smtp", "warehouse", "console")
KIND = "notify_warehouse"
DURATION = re.compile(r"^\d+(\.\d)? (ms|s|min)$")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    root = tmp_path_factory.mktemp("timeline-dev")
    data_dir, config = root / "var", fast_catalog(root, max_attempts=10)
    data_dir.mkdir()
    ports = {name: free_port() for name in PARTS}
    server = start_dev(data_dir, config, ports)
    wait_until(lambda: http_ok(ports["console"]), timeout=30, what="the console")
    try:
        yield DevStack(data_dir, config, ports, server)
    finally:
        server.stop()


def attempt_rows(step: Any) -> list[dict[str, str]]:
    """The step's attempt log as the page shows it: one dict per row, by column heading."""
    table = step.locator("table.attempt-log")
    header = [h.strip().lower() for h in table.locator("thead th").all_inner_texts()]
    return [dict(zip(header, (c.strip() for c in row.locator("td").all_inner_texts())))
            for row in table.locator("tbody tr").all()]


def test_the_timeline_shows_each_attempt_with_its_duration_and_answer(browser: Any, stack: DevStack,  # noqa: F811
                                                                     tmp_path: Path) -> None:
    stack.warehouse_mode("flaky")
    order_id = place_order(stack)
    wait_until(lambda: stack.task_states(order_id).get(KIND) == "done", timeout=60,
               what="the warehouse notification, done on its second attempt")
    wait_until(lambda: stack.task_states(order_id).get("send_confirmation_email") == "done", timeout=60,
               what="the confirmation email")
    context = browser.new_context(viewport={"width": 1360, "height": 860}, base_url=console_url(stack))
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"/orders/{order_id}")

    warehouse = attempt_rows(page.locator("li.step", has=page.locator("strong", has_text=KIND)))
    outcomes = [(row["attempt"], row["outcome"]) for row in warehouse]
    assert outcomes == [("1", "failed, retried"), ("2", "done")], warehouse
    assert "503" in warehouse[0]["answer"] and "warehouse hiccup" in warehouse[0]["answer"], warehouse
    assert '"status": 201' in warehouse[1]["answer"] and "wh-" in warehouse[1]["answer"], warehouse
    assert all(DURATION.match(row["took"]) for row in warehouse), warehouse

    email = attempt_rows(page.locator("li.step", has=page.locator("strong", has_text="send_confirmation_email")))
    assert [(row["attempt"], row["outcome"]) for row in email] == [("1", "done")], email
    assert DURATION.match(email[0]["took"]) and "message_id" in email[0]["answer"], email
    # the step's state badge is still the one badge of the step (the attempts have their own)
    assert page.locator("li.step", has=page.locator("strong", has_text=KIND)).locator(".outcome").inner_text() == "done"
    snap(page, shots_dir(tmp_path), "order-timeline")
    context.close()
