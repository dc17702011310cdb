"""End to end: ``ordertasks dev --tracing`` exports every part's spans over OTLP/HTTP to its
receiver on a free port, and one order's trace holds every effect's attempts (issue 34)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.devstack.conftest import dev_argv
from tests.support.samples import CHECKOUT_BODY, fast_catalog
from tests.support.browser import headless_chromium, screenshot_dir
from tests.support.servers import ServerProcess, free_port
from tests.tracing.conftest import TRACE_ID, TRACEPARENT

KINDS = {"send_confirmation_email", "record_analytics", "generate_invoice", "notify_warehouse",
         "send_followup_email", "request_review"}
DELAYED = {"send_followup_email", "request_review"}
PORTS = ("emulator", "handler", "checkout", "smtp", "warehouse", "console", "traces")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """``ordertasks dev --tracing`` with the warehouse flaky and no delays, on free ports."""
    root = tmp_path_factory.mktemp("dev-tracing")
    data_dir = root / "var"
    data_dir.mkdir()
    ports = {name: free_port() for name in PORTS}
    argv = dev_argv(data_dir, fast_catalog(root), ports, mode="flaky") + [
        "--tracing", "--delay-scale", "0", "--handler-workers", "1"]
    server = ServerProcess(argv, ports["checkout"], log_path=root / "dev.log",
                           ready=lambda: _answers(f"http://127.0.0.1:{ports['console']}/healthz"))
    server.start(timeout=120)
    try:
        yield ports
    finally:
        server.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=0.5).ok
    except requests.RequestException:
        return False


def order_traces(ports: dict[str, int], order_id: str, done: Any, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The receiver's traces of ``order_id`` once ``done(traces)`` holds (polled with a deadline)."""
    deadline = time.monotonic() + timeout
    traces: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        traces = requests.get(f"http://127.0.0.1:{ports['traces']}/api/orders/{order_id}", timeout=5).json()["traces"]
        if done(traces):
            return traces
        time.sleep(0.2)
    raise AssertionError(f"the traces of {order_id} never settled: {[s['name'] for t in traces for s in t['spans']]}")


def deliveries(traces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for t in traces for s in t["spans"] if s["name"].startswith("deliver ")]


def all_done(traces: list[dict[str, Any]]) -> bool:
    done = {s["attributes"]["ordertasks.kind"] for s in deliveries(traces)
            if s["attributes"].get("ordertasks.outcome") == "done"}
    return done == KINDS


def test_one_order_one_trace_through_the_local_stack(stack: dict[str, int], tmp_path: Path) -> None:
    answer = requests.post(f"http://127.0.0.1:{stack['checkout']}/api/checkout", json=CHECKOUT_BODY,
                           headers={"traceparent": TRACEPARENT}, timeout=30)
    assert answer.status_code == 201, answer.text
    order_id = answer.json()["order_id"]
    traces = order_traces(stack, order_id, all_done)
    assert traces[0]["trace_id"] == TRACE_ID
    services = {s["service"] for t in traces for s in t["spans"]}
    assert {"ordertasks-checkout", "ordertasks-handler"} <= services
    for span in deliveries(traces):
        kind = span["attributes"]["ordertasks.kind"]
        if kind in DELAYED:
            assert span["trace_id"] != TRACE_ID and [link["trace_id"] for link in span["links"]] == [TRACE_ID]
        else:
            assert span["trace_id"] == TRACE_ID, kind
        assert span["kind"] == "consumer" and span["attributes"]["ordertasks.order_id"] == order_id

    # The flaky warehouse: attempt 1 answered 503 (on the far end's span), attempt 2 done.
    warehouse = sorted((s for s in deliveries(traces) if s["attributes"]["ordertasks.kind"] == "notify_warehouse"),
                       key=lambda s: s["attributes"]["ordertasks.attempt"])
    assert [(s["attributes"]["ordertasks.attempt"], s["attributes"]["ordertasks.outcome"]) for s in warehouse] == \
        [(1, "retry"), (2, "done")]
    assert warehouse[0]["status"]["code"] == "error"
    spans = {s["span_id"]: s for t in traces for s in t["spans"]}
    failed = [s for s in spans.values() if s["name"] == "POST notify_warehouse" and s["status"]["code"] == "error"]
    assert len(failed) == 1 and failed[0]["events"][0]["name"] == "exception"
    effect = spans[failed[0]["parent_span_id"]]
    assert effect["name"] == "effect notify_warehouse" and effect["parent_span_id"] == warehouse[0]["span_id"]


def test_the_receiver_keeps_the_trace_by_id(stack: dict[str, int]) -> None:
    listed = requests.get(f"http://127.0.0.1:{stack['traces']}/api/traces", timeout=5).json()["traces"]
    assert listed, "the previous test's order left traces"
    one = requests.get(f"http://127.0.0.1:{stack['traces']}/api/traces/{listed[0]['trace_id']}", timeout=5).json()
    assert len(one["spans"]) == listed[0]["spans"]
    missing = requests.get(f"http://127.0.0.1:{stack['traces']}/api/traces/{'0' * 32}", timeout=5)
    assert missing.status_code == 404


def test_the_console_shows_the_order_trace_as_a_waterfall(stack: dict[str, int], tmp_path_factory:
                                                          pytest.TempPathFactory) -> None:
    """Headless Chromium: order page → its trace; every attempt a row, the 503 in red."""
    answer = requests.post(f"http://127.0.0.1:{stack['checkout']}/api/checkout", json=CHECKOUT_BODY,
                           headers={"traceparent": TRACEPARENT.replace(TRACE_ID, "5" * 32)}, timeout=30)
    order_id = answer.json()["order_id"]
    order_traces(stack, order_id, all_done)
    shots = screenshot_dir(tmp_path_factory, "CONSOLE_SCREENSHOTS_DIR", "shots")
    with headless_chromium("the waterfall's browser test drives Debian's headless Chromium") as browser:
        page = browser.new_page(viewport={"width": 1360, "height": 860})
        page.set_default_timeout(20_000)
        page.goto(f"http://127.0.0.1:{stack['console']}/orders/{order_id}")
        with page.expect_navigation():
            page.get_by_role("link", name="Trace: every attempt as a waterfall").click()
        assert page.locator("section.trace").count() == 3      # the order's, and one per delayed kind
        first = page.locator("section.trace").first
        assert "POST /api/checkout" in first.locator("h2").inner_text()
        assert "5" * 32 in first.inner_text()
        for name in ("deliver send_confirmation_email", "effect generate_invoice", "smtp send", "blob put"):
            assert first.locator("g.row text.label", has_text=name).count() >= 1, name
        assert first.locator("g.row text.label", has_text="deliver notify_warehouse").count() == 2
        assert first.locator("g.row.error text.label", has_text="POST notify_warehouse").count() == 1
        assert page.locator("section.trace.linked").count() == 2
        path = shots / "order-trace.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
