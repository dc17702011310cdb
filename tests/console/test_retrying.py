"""Warehouse down: one effect's retries, seen the same way in all four places.

A real ``ordertasks dev`` stack (emulator, handler, checkout, warehouse stand-in in mode
``down``) with a catalog whose warehouse queue allows 3 attempts and waits 60 s, then 120 s,
between them, so nothing moves on its own while the test looks. The test forces each next
attempt with Cloud Tasks' ``RunTask`` (the emulator's ``:run``). After the second failed
attempt the effect must be ``retrying`` (attempt 2 of 3, the next attempt's time, a readable
error) in ``GET /api/orders/{id}``, ``OrderTasks.status``, ``ordertasks stats`` and the
console (badge, timeline, overview count, in headless Chromium); after the third, ``failed``;
and the per-state counts must agree across all four both times.

Writes ``order-retrying.png`` to ``CONSOLE_SCREENSHOTS_DIR`` when set (docs/console/).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from ordertasks import OrderTasks
from tests.console.test_browser import console_url, running_stack, snap
from tests.devstack.conftest import DevStack, place_order
from tests.support.samples import catalog_without, fast_catalog
from tests.support.browser import headless_chromium
from tests.support.servers import wait_until

KIND = "notify_warehouse"
MAX_ATTEMPTS = 3
MIN_BACKOFF = 60          # the wait after attempt 1; after attempt 2 it doubles: 120 s
STATES = ("done", "running", "retrying", "failed", "cancelled")


def slow_warehouse_catalog(root: Path) -> Path:
    """The shipped catalog with short backoffs, 3 attempts, a warehouse queue that waits
    minutes between attempts, and no delayed kinds (nothing changes while the test reads)."""
    fast = fast_catalog(root, max_attempts=MAX_ATTEMPTS)
    text = fast.read_text()
    head, warehouse = text.split("[queues.ordertasks-warehouse]", 1)
    warehouse = re.sub(r"min_backoff_seconds = [\d.]+", f"min_backoff_seconds = {MIN_BACKOFF}", warehouse, count=1)
    warehouse = re.sub(r"max_backoff_seconds = [\d.]+", "max_backoff_seconds = 600", warehouse, count=1)
    fast.write_text(head + "[queues.ordertasks-warehouse]" + warehouse)
    return catalog_without(root / "retrying.toml", "kinds.send_followup_email", "kinds.request_review", source=fast)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    root = tmp_path_factory.mktemp("retrying-dev")
    with running_stack(root, slow_warehouse_catalog(root)) as dev:
        yield dev


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with headless_chromium("the console check drives Debian's headless Chromium") as instance:
        yield instance


@pytest.fixture
def page(browser: Any, stack: DevStack) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 860}, base_url=console_url(stack))
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    try:
        yield tab
    finally:
        context.close()


def shots_dir(tmp_path: Path) -> Path:
    wanted = os.environ.get("CONSOLE_SCREENSHOTS_DIR")
    target = Path(wanted) if wanted else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    return target


# --- the four places ------------------------------------------------------------------


def api_task(stack: DevStack, order_id: str) -> dict[str, Any]:
    """The warehouse task as ``GET /api/orders/{id}`` shows it."""
    return next(t for t in stack.order(order_id)["tasks"] if t["kind"] == KIND)


def library_tasks(stack: DevStack, order_id: str) -> list[dict[str, Any]]:
    """Every task of the order as ``OrderTasks.status`` shows it (an in-process library user)."""
    with OrderTasks.from_env(stack.env()) as tasks:
        return list(tasks.status(order_id)["tasks"])


def counts_of(tasks: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """kind → state → how many, over one order's task views (every counted state present)."""
    counts: dict[str, dict[str, int]] = {}
    for task in tasks:
        row = counts.setdefault(task["kind"], dict.fromkeys(STATES, 0))
        if task["state"] in row:
            row[task["state"]] += 1
    return counts


def columns(line: str) -> list[str]:
    """The cells of one line of a plain-text table (columns are two or more spaces apart)."""
    return re.split(r" {2,}", line.strip())


def stats_counts(stack: DevStack) -> tuple[dict[str, dict[str, int]], str]:
    """kind → state → count from ``ordertasks stats``, and its whole output."""
    run = stack.cli("stats")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("KIND"))
    header = [cell.lower() for cell in columns(lines[start])]
    rows = [dict(zip(header, columns(line))) for line in lines[start + 1:] if line.strip()]
    return {row["kind"]: {state: int(row[state]) for state in STATES} for row in rows}, run.stdout


def queue_row(stdout: str, queue: str) -> dict[str, str]:
    """One row of ``stats``' queue table, by header."""
    lines = stdout.splitlines()
    header = [cell.lower() for cell in columns(lines[0])]
    line = next(line for line in lines if line.startswith(queue + " "))
    return dict(zip(header, columns(line)))


def overview_counts(page: Any) -> dict[str, dict[str, int]]:
    """kind → state → count from the console's Overview table, read in the browser."""
    page.goto("/")
    grid = page.locator("table.grid").first
    header = [cell.strip() for cell in grid.locator("thead th").all_inner_texts()]
    counts = {}
    for row in grid.locator("tbody tr").all():
        cells = dict(zip(header, (c.strip() for c in row.locator("td").all_inner_texts())))
        counts[cells["KIND"].lower()] = {state: int(cells[state.upper()]) for state in STATES}
    return counts


def warehouse_step(page: Any, order_id: str) -> Any:
    """The warehouse step of the order's timeline in the console."""
    page.goto(f"/orders/{order_id}")
    return page.locator("li.step", has=page.locator("strong", has_text=KIND))


# --- driving the task ---------------------------------------------------------------


def run_now(stack: DevStack, task_name: str) -> None:
    """Cloud Tasks' RunTask: the next attempt now, whatever its backoff."""
    emulator = f"http://127.0.0.1:{stack.ports['emulator']}"
    requests.post(f"{emulator}/v2/{task_name}:run", timeout=30).raise_for_status()


def wait_for(stack: DevStack, order_id: str, state: str, attempt: int) -> dict[str, Any]:
    """Poll the API until the warehouse task is in ``state`` after attempt ``attempt``."""
    def reached() -> bool:
        task = api_task(stack, order_id)
        return task["state"] == state and task["attempt"] == attempt
    wait_until(reached, timeout=60, interval=0.2, what=f"{KIND} {state} after attempt {attempt}")
    return api_task(stack, order_id)


def assert_readable(error: str) -> None:
    assert "answered 503" in error and "warehouse is down" in error, error
    assert not re.search(r"\b14\b", error), f"a gRPC code leaked into {error!r}"


# --- the test ---------------------------------------------------------------------------


def test_warehouse_down_retrying_then_failed_alike_in_api_library_stats_and_console(
        stack: DevStack, page: Any, tmp_path: Path) -> None:
    stack.warehouse_mode("down")
    order_id = place_order(stack)
    first = wait_for(stack, order_id, "retrying", 1)
    wait_until(lambda: all(t["state"] == "done" for t in stack.order(order_id)["tasks"] if t["kind"] != KIND),
               timeout=60, what="the order's other effects done")

    run_now(stack, first["task_name"])
    task = wait_for(stack, order_id, "retrying", 2)
    failed_at = datetime.now(UTC)

    # the API
    assert (task["attempt"], task["max_attempts"]) == (2, MAX_ATTEMPTS)
    assert_readable(task["last_error"])
    wait = (datetime.fromisoformat(task["next_attempt_at"]) - failed_at).total_seconds()
    assert 2 * MIN_BACKOFF - 20 < wait <= 2 * MIN_BACKOFF, f"next attempt in {wait:.0f} s, not the queue's 120 s"
    api = counts_of(stack.order(order_id)["tasks"])
    assert api[KIND] == {"done": 0, "running": 0, "retrying": 1, "failed": 0, "cancelled": 0}

    # the library
    library = library_tasks(stack, order_id)
    assert next(t for t in library if t["kind"] == KIND) == task
    assert counts_of(library) == api

    # ordertasks stats
    stats, stdout = stats_counts(stack)
    assert stats == api, stdout
    assert queue_row(stdout, "ordertasks-warehouse")["retrying"] == "1", stdout
    assert queue_row(stdout, "ordertasks-warehouse")["scheduled later"] == "0", stdout

    # the console: badge, timeline detail, overview
    step = warehouse_step(page, order_id)
    assert step.locator(".outcome").inner_text() == "retrying"
    detail = step.inner_text()
    assert f"attempt 2 of {MAX_ATTEMPTS} failed" in detail and "warehouse is down" in detail, detail
    assert "next attempt" in detail and "scheduled" not in step.locator(".step-head").inner_text(), detail
    assert "last answer HTTP 503" in detail and "14 HTTP" not in detail, detail
    snap(page, shots_dir(tmp_path), "order-retrying")
    assert overview_counts(page) == api

    # the last attempt fails: failed for good, nowhere in progress
    run_now(stack, task["task_name"])
    final = wait_for(stack, order_id, "failed", 3)
    assert (final["max_attempts"], final["next_attempt_at"]) == (MAX_ATTEMPTS, None)
    assert_readable(final["last_error"])
    api = counts_of(stack.order(order_id)["tasks"])
    assert api[KIND] == {"done": 0, "running": 0, "retrying": 0, "failed": 1, "cancelled": 0}
    assert counts_of(library_tasks(stack, order_id)) == api
    stats, stdout = stats_counts(stack)
    assert stats == api, stdout
    assert warehouse_step(page, order_id).locator(".outcome").inner_text() == "failed"
    assert overview_counts(page) == api
