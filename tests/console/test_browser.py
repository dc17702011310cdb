"""The console in a real browser (Debian's headless Chromium driven by Playwright) against
a real ``ordertasks dev`` stack whose warehouse rejects notifications.

Screenshots of every page are written to a temporary directory, or to
``CONSOLE_SCREENSHOTS_DIR`` when set (``docs/console/`` holds the published ones).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ordertasks.infra.config import load_catalog
from tests.devstack.conftest import DELAY_SCALE, DevStack, place_order, start_dev
from tests.support.samples import CHECKOUT_BODY, fast_catalog
from tests.support.browser import headless_chromium, screenshot_dir
from tests.support.servers import ServerProcess, free_port, http_ok, wait_until

PARTS = ("emulator", "handler", "checkout", "smtp", "warehouse", "console")


@contextmanager
def running_stack(root: Path, config: Path) -> Iterator[DevStack]:
    """``ordertasks dev`` on free ports with ``config``, its data under ``root``, until the block ends."""
    data_dir = root / "var"
    data_dir.mkdir()
    ports = {name: free_port() for name in PARTS}
    server = start_dev(data_dir, config, ports)
    wait_until(lambda: http_ok(ports["console"]), timeout=30, what="the console")
    try:
        yield DevStack(data_dir, config, ports, server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    root = tmp_path_factory.mktemp("console-dev")
    with running_stack(root, fast_catalog(root)) as dev:
        yield dev


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with headless_chromium("the console's browser tests drive Debian's headless Chromium") as instance:
        yield instance


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshot_dir(tmp_path_factory, "CONSOLE_SCREENSHOTS_DIR", "screenshots")


@pytest.fixture
def page(browser: Any, stack: DevStack) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 860}, base_url=console_url(stack))
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    try:
        yield tab
    finally:
        context.close()


def console_url(stack: DevStack) -> str:
    return f"http://127.0.0.1:{stack.ports['console']}"


def snap(page: Any, shots: Path, name: str) -> Path:
    """A full-page screenshot, checked to be a real, non-blank image."""
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    return path


def follow(page: Any, target: Any) -> None:
    """Click a link or a form button and wait until the page it leads to has loaded."""
    with page.expect_navigation():
        target.click()
    page.wait_for_load_state("load")


def failed_order(stack: DevStack) -> tuple[str, str]:
    """An order whose warehouse notification the warehouse rejected for good."""
    stack.warehouse_mode("reject")
    order_id = place_order(stack)
    wait_until(lambda: stack.task_states(order_id).get("notify_warehouse") == "failed", timeout=60,
               what="the rejected notification's failed-task entry")
    return order_id, f"{order_id}:notify_warehouse"


def reload_until(page: Any, text: str, timeout: float = 60) -> None:
    """Reload until ``text`` shows (the handler works in the background)."""
    def shown() -> bool:
        page.reload()
        return text in page.content()
    wait_until(shown, timeout=timeout, interval=0.5, what=f"{text!r} on {page.url}")


def test_triage_a_failed_task_end_to_end(page: Any, stack: DevStack, shots: Path) -> None:
    order_id, failed_id = failed_order(stack)
    page.goto("/")
    assert page.locator("h1").inner_text() == "Overview"
    follow(page, page.get_by_role("link", name="Failed tasks"))
    page.wait_for_url("**/failed")
    row = page.locator("tr", has=page.get_by_role("link", name=failed_id))
    assert "open" in row.inner_text() and "Rejected" in row.inner_text()
    snap(page, shots, "failed-list")
    follow(page, row.get_by_role("link", name=failed_id))
    assert page.locator("h1").inner_text() == f"Failed task {failed_id}"
    assert '"order_id"' in page.locator("pre.payload").inner_text()
    snap(page, shots, "failed-detail")
    stack.warehouse_mode("ok")
    follow(page, page.get_by_role("link", name="Replay…"))
    assert page.locator("h1").inner_text() == f"Replay {failed_id}?"
    snap(page, shots, "failed-replay-confirm")
    follow(page, page.get_by_role("button", name="Replay now"))
    assert "replay created" in page.locator(".flash").first.inner_text()
    reload_until(page, "Resolved by the replay")
    assert page.locator(".status").first.inner_text() == "resolved"       # the handler closes it
    assert "handler" in page.locator(".fields").inner_text()               # resolved_by
    snap(page, shots, "failed-detail-replayed")
    assert len(stack.notifications(order_id)) == 1


def test_bulk_replay_of_three(page: Any, stack: DevStack, shots: Path) -> None:
    orders = [failed_order(stack)[0] for _ in range(3)]
    stack.warehouse_mode("ok")
    page.goto("/failed?kind=notify_warehouse&status=open")
    assert page.locator(".summary strong").inner_text() == "3"
    follow(page, page.get_by_role("link", name="Replay all matching…"))
    assert page.locator("h1").inner_text() == "Replay 3 failed task(s)?"
    snap(page, shots, "failed-bulk-confirm")
    follow(page, page.get_by_role("button", name="Replay 3 task(s)"))
    assert "bulk replay: 3 of 3 replayed" in page.content()
    for order_id in orders:
        wait_until(lambda o=order_id: stack.task_states(o)["notify_warehouse"] == "done", timeout=60,
                   what=f"{order_id}'s replayed notification")
    assert [len(stack.notifications(o)) for o in orders] == [1, 1, 1]


def long_delay_kinds(stack: DevStack) -> list[str]:
    """Kinds still waiting in Cloud Tasks a while after checkout (under the tests' delay scale)."""
    catalog = load_catalog(stack.config)
    return [k for k, c in catalog.kinds.items() if c.delay_seconds * float(DELAY_SCALE) > 60]


def test_cancel_an_orders_pending_tasks(page: Any, stack: DevStack, shots: Path) -> None:
    stack.warehouse_mode("ok")
    order_id = place_order(stack)
    waiting = long_delay_kinds(stack)
    immediate = [k for k in load_catalog(stack.config).kinds if k not in waiting]
    wait_until(lambda: all(stack.task_states(order_id).get(k) == "done" for k in immediate), timeout=60,
               what="the order's immediate effects")
    page.goto("/orders")
    page.get_by_label("Order id or customer email").fill(order_id)
    follow(page, page.get_by_role("button", name="Search"))
    assert page.locator("h1").inner_text() == f"Order {order_id}"
    assert page.locator(".outcome.scheduled").count() == len(waiting)
    follow(page, page.get_by_role("link", name=f"Cancel {len(waiting)} pending task(s)"))
    snap(page, shots, "order-cancel-confirm")
    follow(page, page.get_by_role("button", name=f"Cancel {len(waiting)} task(s)"))
    flashes = page.locator(".flash").all_inner_texts()
    cancelled = [f.removesuffix(": cancelled").split(", ") for f in flashes if f.endswith(": cancelled")]
    assert cancelled and sorted(cancelled[0]) == sorted(waiting), flashes
    done = [f.removesuffix(": effect already done").split(", ") for f in flashes if f.endswith("already done")]
    assert done and sorted(done[0]) == sorted(immediate), flashes
    assert page.locator(".outcome.cancelled").count() == len(waiting)
    assert page.locator(".outcome.done").count() == len(immediate)
    snap(page, shots, "order-cancelled")


def test_search_orders_by_email_and_the_queues_page(page: Any, stack: DevStack, shots: Path) -> None:
    email = CHECKOUT_BODY["customer"]["email"]
    placed = place_order(stack)
    page.goto("/orders")
    page.get_by_label("Order id or customer email").fill(email)
    follow(page, page.get_by_role("button", name="Search"))
    assert "order(s) for" in page.locator("h2").inner_text()
    assert page.get_by_role("link", name=placed).count() == 1
    snap(page, shots, "orders-search")
    page.goto("/queues")
    assert page.locator("tbody tr").count() == len(load_catalog(stack.config).queues)
    snap(page, shots, "queues")
    page.goto("/queues/ordertasks-warehouse/purge")
    snap(page, shots, "queue-purge-confirm")


def test_without_credentials_the_console_says_what_to_run(browser: Any, tmp_path: Path, shots: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ORDERTASKS_", "GOOGLE_", "CLOUDSDK_")) and k != "CLOUD_TASKS_EMULATOR_HOST"}
    env |= {"CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "GCE_METADATA_HOST": "127.0.0.1:9",
            "GCE_METADATA_IP": "127.0.0.1:9", "NO_GCE_CHECK": "True"}
    server = ServerProcess([sys.executable, "-m", "cli", "console", "--port", str(port), "--backend", "cloud",
                            "--project", "my-shop-project", "--location", "europe-west1"], port, env=env,
                           log_path=tmp_path / "console.log", ready=lambda: http_ok(port, "/")  # 503 is the page
                           or "cannot reach" in _text(port))
    server.start(timeout=60)
    try:
        context = browser.new_context(viewport={"width": 1360, "height": 700})
        tab = context.new_page()
        response = tab.goto(f"http://127.0.0.1:{port}/failed")
        assert response.status == 503
        assert "gcloud auth application-default login" in tab.locator("pre.command").inner_text()
        assert "cloud · project my-shop-project" in tab.locator(".where").inner_text()
        assert "Traceback" not in tab.content()
        snap(tab, shots, "no-credentials")
        context.close()
    finally:
        server.stop()
    assert "Traceback" not in (tmp_path / "console.log").read_text()


def _text(port: int) -> str:
    import requests

    try:
        return requests.get(f"http://127.0.0.1:{port}/", timeout=1).text
    except requests.RequestException:
        return ""


def test_the_dev_banner_names_the_console(stack: DevStack) -> None:
    # The console answers a moment before `ordertasks dev` has printed its line: poll the log.
    line = re.compile(rf"^  console +{re.escape(console_url(stack))}/ ", re.MULTILINE)
    log = stack.data_dir.parent / "dev.log"
    wait_until(lambda: line.search(log.read_text()), timeout=30, what="the banner's console line")


def test_chromium_is_debians(browser: Any) -> None:
    assert shutil.which("chromium") and browser.version.split(".")[0].isdigit()
