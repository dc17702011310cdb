"""A queue's tasks in headless Chromium: browse them page by page with their states (due,
retrying, scheduled), inspect one (its body is the reference ``{kind, v, order_id}``, linked to
the order), run one now (the target receives it) and delete one (it is gone), each action
behind its confirm page and CSRF token.

The console runs over SQLite and its own Cloud Tasks emulator holding the shipped catalog's
queues (warehouse retries back off 30 s, so a failed task stays ``retrying`` for the test);
the tasks are aimed at a recording HTTP target.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from ordertasks.handlers.contract import encode
from ordertasks.handlers.settings import Backend, StoreSettings, TasksSettings
from ordertasks.infra.config import Settings
from ordertasks.infra.console import Console, console_from_settings, create_app
from ordertasks.producer.enqueue import queue_path, task_id
from tests.console.served import served
from tests.console.test_browser import browser, follow, shots, snap  # noqa: F401 - fixtures
from tests.emulator.conftest import Emulator, start_emulator
from tests.emulator.receiver import Receiver, Reply
from tests.support.samples import DEFAULT_CATALOG
from tests.support.servers import wait_until

QUEUE, KIND = "ordertasks-warehouse", "notify_warehouse"
DUE, RETRYING, LATER = ["ord_due00001", "ord_due00002"], "ord_retry001", "ord_later001"


@dataclass
class Stack:
    """The console (served), its Cloud Tasks client and the tasks' target."""

    console: Console
    url: str
    target: Receiver

    @property
    def parent(self) -> str:
        return queue_path(self.console.catalog.project, self.console.catalog.region, QUEUE)

    def create(self, order_id: str, path: str, delay: float = 0) -> str:
        """A notify_warehouse task for ``order_id`` aimed at ``path``, due in ``delay`` seconds."""
        task = {"name": f"{self.parent}/tasks/{task_id(order_id, KIND)}",
                "http_request": {"url": self.target.url(path), "body": encode(KIND, order_id),
                                 "headers": {"Content-Type": "application/json"}},
                "schedule_time": datetime.now(UTC) + timedelta(seconds=delay)}
        return self.console.tasks.create_task(parent=self.parent, task=task).name

    def exists(self, order_id: str) -> bool:
        try:
            self.console.tasks.get_task(name=f"{self.parent}/tasks/{task_id(order_id, KIND)}")
        except gexc.NotFound:
            return False
        return True


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("queue-browsing")
    emulator: Emulator = start_emulator(root, extra=["--queues", str(DEFAULT_CATALOG)])
    target = Receiver().start()
    settings = Settings(backend=Backend.LOCAL, catalog_path=DEFAULT_CATALOG, store=StoreSettings(data_dir=root),
                        tasks=TasksSettings(emulator_host=f"127.0.0.1:{emulator.port}"))
    console = console_from_settings(settings)
    try:
        with served(create_app(console)) as url:
            yield Stack(console, url, target)
    finally:
        target.stop()
        emulator.process.stop()


@pytest.fixture(scope="module")
def tasks_in_three_states(stack: Stack) -> Stack:
    """One task whose attempt failed (retrying), then, with the queue paused, two due and one for later."""
    stack.target.script("/fail", [Reply(503)])
    name = stack.create(RETRYING, "/fail")
    wait_until(lambda: stack.console.tasks.get_task(name=name).response_count >= 1, timeout=30,
               what="the first failed attempt")
    stack.console.tasks.pause_queue(name=stack.parent)
    for order_id in DUE:
        stack.create(order_id, "/ok")
    stack.create(LATER, "/ok", delay=3600)
    return stack


@pytest.fixture
def page(browser: Any, tasks_in_three_states: Stack) -> Iterator[Any]:  # noqa: F811 - the imported fixture
    context = browser.new_context(viewport={"width": 1360, "height": 860}, base_url=tasks_in_three_states.url)
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    try:
        yield tab
    finally:
        context.close()


def row_of(page: Any, order_id: str) -> Any:
    return page.locator("tbody tr", has=page.get_by_role("link", name=task_id(order_id, KIND)))


def test_browse_a_queue_s_tasks_by_state(page: Any, shots: Path) -> None:  # noqa: F811
    page.goto("/queues")
    follow(page, page.get_by_role("link", name=QUEUE, exact=True))
    assert page.locator("h1").inner_text() == f"Queue {QUEUE}"
    states = {order_id: row_of(page, order_id).locator(".state").inner_text() for order_id in [*DUE, RETRYING, LATER]}
    assert states == {DUE[0]: "due", DUE[1]: "due", RETRYING: "retrying", LATER: "scheduled"}
    assert "503" in row_of(page, RETRYING).inner_text()                 # the failed attempt's answer
    snap(page, shots, "queue-tasks")


def test_inspect_a_task(page: Any, shots: Path) -> None:  # noqa: F811
    page.goto(f"/queues/{QUEUE}/tasks")
    follow(page, page.get_by_role("link", name=task_id(RETRYING, KIND)))
    fields = page.locator(".fields").inner_text()
    assert f"kind {KIND}, v 2, order {RETRYING}" in " ".join(fields.split())
    assert page.get_by_role("link", name=RETRYING).get_attribute("href") == f"/orders/{RETRYING}"
    assert "1 dispatched, 1 answered" in fields and "answer HTTP 503" in fields, fields
    snap(page, shots, "queue-task")


def test_run_a_due_task_now(page: Any, stack: Stack, shots: Path) -> None:  # noqa: F811
    page.goto(f"/queues/{QUEUE}/tasks/{task_id(DUE[0], KIND)}")
    follow(page, page.get_by_role("link", name="Run now…"))
    assert page.locator("h1").inner_text() == f"Run task {task_id(DUE[0], KIND)}?"
    snap(page, shots, "queue-task-run-confirm")
    follow(page, page.get_by_role("button", name=f"Run now {task_id(DUE[0], KIND)}"))
    assert "dispatched now" in page.locator(".flash").inner_text()
    delivered = wait_until(lambda: stack.target.received("/ok"), timeout=30, what="the run task's delivery")
    assert [json.loads(r.body)["order_id"] for r in delivered] == [DUE[0]]   # the queue is paused: only that one
    wait_until(lambda: not stack.exists(DUE[0]), timeout=30, what="the delivered task's deletion")
    assert stack.exists(DUE[1])


def test_delete_a_scheduled_task(page: Any, stack: Stack) -> None:
    page.goto(f"/queues/{QUEUE}/tasks/{task_id(LATER, KIND)}")
    follow(page, page.get_by_role("link", name="Delete…"))
    follow(page, page.get_by_role("button", name=f"Delete {task_id(LATER, KIND)}"))
    assert "deleted from" in page.locator(".flash").inner_text()
    assert not stack.exists(LATER)
    assert row_of(page, LATER).count() == 0
    page.goto(f"/queues/{QUEUE}/tasks/{task_id(LATER, KIND)}")
    assert "no task" in page.content()


def test_an_action_without_the_csrf_token_changes_nothing(stack: Stack) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{stack.url}/queues/{QUEUE}/tasks/{task_id(DUE[1], KIND)}/delete", data=b"",
                                     method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code in (400, 403)
    assert stack.exists(DUE[1])


def test_pages_follow_the_page_token(page: Any, stack: Stack) -> None:
    for n in range(50):
        stack.create(f"ord_page{n:05d}", "/ok", delay=3600)
    page.goto(f"/queues/{QUEUE}/tasks")
    first = page.locator("tbody tr").count()
    follow(page, page.get_by_role("link", name="Next page →"))
    second = page.locator("tbody tr").count()
    assert first == 50 and first + second == 52          # retrying, one due, 50 later
    assert page.get_by_role("link", name="First page").count() == 1
