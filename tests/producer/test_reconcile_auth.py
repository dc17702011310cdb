"""``POST /internal/reconcile`` and ``/internal/sweep`` behind OIDC, called the way Cloud Scheduler would.

The emulator mints real RS256 tokens when it dispatches a task with ``oidcToken``; the
checkout verifies them against the emulator's certificates: no key or verifier is faked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from google.api_core.exceptions import ServiceUnavailable
from google.api_core.retry import Retry, if_exception_type
from google.cloud import tasks_v2

from ordertasks.handlers.config import load_catalog
from ordertasks.handlers.ports import FailureReport
from ordertasks.producer import wiring
from ordertasks.producer.checkout import create_app
from ordertasks.producer.enqueue import queue_path
from tests.producer.conftest import CATALOG, Emulator, LiveServer, Stack, build_stack, order_body
from tests.support.servers import wait_until


KINDS = tuple(load_catalog(CATALOG).kinds)  # counts derive from the catalog under test

DISPATCHER = "ordertasks-dispatcher@my-shop-project.iam.gserviceaccount.com"


@pytest.fixture
def secured(tmp_path: Path, emulator: Emulator) -> Iterator[tuple[Stack, LiveServer]]:
    """The app with OIDC on, served over HTTP, its audience its own URL."""
    stack = build_stack(tmp_path, emulator)
    live = LiveServer(stack.app)  # bound now so the URL is known; the app is replaced below
    certs_url = f"http://{emulator.host}/oauth2/v1/certs"
    settings = stack.settings.with_changes(oidc={"verify": True, "certs_url": certs_url}, tasks={"checkout_url": live.url})
    app = create_app(settings, store=stack.store, enqueuer=stack.enqueuer, gateway=stack.gateway)
    live.server.app = app
    stack = replace(stack, settings=settings, app=app)
    with live:
        yield stack, live
    stack.enqueuer.close()


def _scheduler_call(stack: Stack, url: str, email: str, audience: str) -> Any:
    """Create a task aimed at ``url`` with an OIDC token and force its dispatch, like a scheduler job."""
    cat = stack.catalog
    parent = queue_path(cat.project, cat.region, "ordertasks-analytics")
    client = stack.enqueuer.client
    # The emulator may have just restarted: a gRPC client sees UNAVAILABLE until it reconnects.
    retry = Retry(predicate=if_exception_type(ServiceUnavailable), initial=0.1, maximum=0.5, timeout=15)
    task = client.create_task(parent=parent, task=tasks_v2.Task(http_request=tasks_v2.HttpRequest(
        http_method=tasks_v2.HttpMethod.POST, url=url,
        oidc_token=tasks_v2.OidcToken(service_account_email=email, audience=audience))), retry=retry)
    client.run_task(name=task.name)
    return task


def _pending(stack: Stack) -> int:
    return len(stack.store.orders.pending_outbox(datetime.now(timezone.utc) + timedelta(seconds=1)))


def _outage_order(stack: Stack) -> None:
    stack.emulator.stop()
    assert stack.client.post("/api/checkout", json=order_body()).status_code == 202
    stack.emulator.start()


def test_token_minted_for_the_dispatcher_runs_reconcile(secured: tuple[Stack, LiveServer]) -> None:
    stack, live = secured
    _outage_order(stack)
    assert _pending(stack) == len(KINDS)
    _scheduler_call(stack, f"{live.url}/internal/reconcile?grace_seconds=0", DISPATCHER, live.url)
    wait_until(lambda: _pending(stack) == 0, timeout=20, what="reconcile through an OIDC-verified call")
    assert len([t for t in stack.tasks() if "-ord_" in t.name]) == len(KINDS)


def test_missing_or_garbage_token_is_401(secured: tuple[Stack, LiveServer]) -> None:
    _, live = secured
    for headers in ({}, {"Authorization": "Bearer not.a.jwt"}, {"Authorization": "Basic abc"}):
        resp = requests.post(f"{live.url}/internal/reconcile", headers=headers, timeout=10)
        assert resp.status_code == 401, resp.text
        assert resp.json()["error"]["code"] == "unauthenticated"


def _last_status(stack: Stack, name: str) -> int | None:
    task = stack.enqueuer.client.get_task(name=name)
    code = task.last_attempt.response_status.code if task.last_attempt else 0
    return code or None


def test_other_service_account_is_forbidden(secured: tuple[Stack, LiveServer]) -> None:
    stack, live = secured
    _outage_order(stack)
    task = _scheduler_call(stack, f"{live.url}/internal/reconcile?grace_seconds=0",
                           "intruder@my-shop-project.iam.gserviceaccount.com", live.url)
    status = wait_until(lambda: _last_status(stack, task.name), timeout=20, what="the dispatch attempt")
    assert status == 7  # google.rpc.Code PERMISSION_DENIED: our 403
    assert _pending(stack) == len(KINDS)


def test_wrong_audience_is_unauthenticated(secured: tuple[Stack, LiveServer]) -> None:
    stack, live = secured
    _outage_order(stack)
    task = _scheduler_call(stack, f"{live.url}/internal/reconcile?grace_seconds=0", DISPATCHER,
                           "https://some-other-service.example/")
    status = wait_until(lambda: _last_status(stack, task.name), timeout=20, what="the dispatch attempt")
    assert status == 16  # UNAUTHENTICATED: our 401
    assert _pending(stack) == len(KINDS)


def test_wiring_refuses_any_google_account_by_default(tmp_path: Path, emulator: Emulator) -> None:
    stack = build_stack(tmp_path, emulator)
    verifier = wiring.reconcile_verifier(stack.settings)
    assert verifier.allowed_emails == frozenset({DISPATCHER})
    stack.enqueuer.close()


def _failed_replay_request(stack: Stack) -> str:
    """An order whose warehouse task failed and an operator then marked replay_requested."""
    created = stack.client.post("/api/checkout", json=order_body())
    order_id = created.get_json()["order_id"]
    now = datetime.now(timezone.utc)
    payload = {"kind": "notify_warehouse", "v": 2, "order_id": order_id}
    stack.store.failed.record_failure(FailureReport(order_id, "notify_warehouse", "ordertasks-warehouse", "t", payload,
                                             "Rejected", "422 unknown SKU", 1, now))
    stack.store.failed.update_failed(f"{order_id}:notify_warehouse", "replay_requested", now)
    return order_id


def test_scheduler_token_runs_the_sweeper(secured: tuple[Stack, LiveServer]) -> None:
    stack, live = secured
    order_id = _failed_replay_request(stack)
    _scheduler_call(stack, f"{live.url}/internal/sweep", DISPATCHER, live.url)
    wait_until(lambda: stack.store.failed.get_failed(f"{order_id}:notify_warehouse").status == "replayed", timeout=20,
               what="the sweep through an OIDC-verified call")
    assert any(t.name.endswith(f"{order_id}-notify_warehouse-r1") for t in stack.tasks())


def test_sweep_without_token_is_401_and_replays_nothing(secured: tuple[Stack, LiveServer]) -> None:
    stack, live = secured
    order_id = _failed_replay_request(stack)
    resp = requests.post(f"{live.url}/internal/sweep", timeout=10)
    assert resp.status_code == 401
    assert stack.store.failed.get_failed(f"{order_id}:notify_warehouse").status == "replay_requested"
