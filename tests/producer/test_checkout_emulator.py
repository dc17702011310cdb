"""The checkout flow end to end: real emulator, real REST client, real SQLite store."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests

from ordertasks.handlers.config import load_catalog
from ordertasks.handlers.contract import OrderSnapshot, encode, parse_envelope
from ordertasks.producer import wiring
from ordertasks.producer.checkout import create_app
from ordertasks.producer.enqueue import task_name
from ordertasks.producer.orders import request_hash
from ordertasks.producer.payments import LocalGateway, PaymentUnavailable
from ordertasks.producer.reconcile import main as reconcile_main
from tests.producer.conftest import CATALOG, Emulator, LiveServer, Stack, build_stack, make_settings, order_body, pause_all

KINDS = set(load_catalog(CATALOG).kinds)  # every count below derives from the catalog


def _checkout(stack: Stack, body: dict[str, Any], key: str | None = None) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    return stack.client.post("/api/checkout", json=body, headers=headers)


def _tasks_of(stack: Stack, order_id: str) -> dict[str, Any]:
    return {t.name: t for t in stack.tasks() if f"-{order_id}-" in t.name}


def test_checkout_creates_one_task_per_catalog_kind(stack: Stack) -> None:
    before = datetime.now(timezone.utc)
    resp = _checkout(stack, order_body())
    assert resp.status_code == 201, resp.get_json()
    answer = resp.get_json()
    order_id = answer["order_id"]
    assert resp.headers["Location"] == f"/api/orders/{order_id}"
    tasks = _tasks_of(stack, order_id)
    cat = stack.catalog
    expected = {task_name(cat.project, cat.region, cat.kinds[k].queue, order_id, k): k for k in cat.kinds}
    assert set(tasks) == set(expected)
    assert {t["task_name"] for t in answer["tasks"]} == set(expected)
    assert {t["state"] for t in answer["tasks"]} == {"scheduled"}
    placed_at = datetime.fromisoformat(answer["placed_at"])
    assert abs((placed_at - before).total_seconds()) < 1
    for name, task in tasks.items():
        kind = expected[name]
        config = cat.kinds[kind]
        due = placed_at + timedelta(seconds=config.delay_seconds)
        assert abs((task.schedule_time - due).total_seconds()) <= 1, kind
        assert task.dispatch_deadline == timedelta(seconds=config.dispatch_deadline_seconds)
        request = task.http_request
        assert request.url == stack.settings.tasks.handler_url
        assert request.http_method.name == "POST"
        assert request.headers["Content-Type"] == "application/json"
        assert request.oidc_token.service_account_email == \
            "ordertasks-dispatcher@my-shop-project.iam.gserviceaccount.com"
        assert request.oidc_token.audience == stack.settings.audience
        parsed = parse_envelope(request.body)  # the handler's own parser accepts every body
        assert (parsed.kind, parsed.order_id) == (kind, order_id)


def test_task_bodies_are_references_without_personal_data(stack: Stack) -> None:
    order_id = _checkout(stack, order_body()).get_json()["order_id"]
    bodies = {json.loads(t.http_request.body)["kind"]: json.loads(t.http_request.body)
              for t in _tasks_of(stack, order_id).values()}
    assert set(bodies) == KINDS
    for kind, body in bodies.items():
        assert body == {"kind": kind, "v": 2, "order_id": order_id}


def _without_token(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "cancel_token"}


def test_same_idempotency_key_gives_the_first_answer_and_charges_once(stack: Stack) -> None:
    first = _checkout(stack, order_body(), key="key-123")
    again = _checkout(stack, order_body(), key="key-123")
    assert first.status_code == again.status_code == 201
    # The same answer, but for the cancel token: stored answers never hold one, so a replay
    # hands out a new token and only that one cancels (docs/security.md).
    assert again.get_json()["cancel_token"] != first.get_json()["cancel_token"]
    assert _without_token(again.get_json()) == _without_token(first.get_json())
    assert again.headers["Idempotent-Replayed"] == "true"
    order_id = first.get_json()["order_id"]
    assert len(_tasks_of(stack, order_id)) == len(KINDS)
    assert len(stack.tasks()) == len(KINDS)
    assert [c.idempotency_key for c in stack.gateway.charges()] == [order_id]


def test_same_key_with_another_body_is_422_and_charges_nothing_more(stack: Stack) -> None:
    assert _checkout(stack, order_body(), key="key-abc").status_code == 201
    other = _checkout(stack, order_body(currency="USD"), key="key-abc")
    assert other.status_code == 422
    assert other.get_json()["error"]["code"] == "idempotency_key_reused"
    assert len(stack.gateway.charges()) == 1
    assert len(stack.tasks()) == len(KINDS)


def test_declined_card_is_402_with_no_tasks(stack: Stack) -> None:
    resp = _checkout(stack, order_body(payment_token="tok_declined"))
    assert resp.status_code == 402
    assert resp.get_json()["error"]["code"] == "payment_declined"
    assert "cancel_token" not in resp.get_json()["error"]   # nothing was charged: nothing to cancel
    assert stack.tasks() == []
    assert stack.gateway.charges() == []
    [order] = stack.store.orders.recent_orders(5)
    assert order.status == "payment_failed"


def test_resubmitting_an_order_enqueues_nothing_twice(stack: Stack) -> None:
    order_id = _checkout(stack, order_body()).get_json()["order_id"]
    record = stack.store.orders.get_order(order_id)
    assert record is not None
    results = stack.enqueuer.enqueue_order(order_id, OrderSnapshot.model_validate(record.snapshot))
    assert {r.status for r in results} == {"exists"}
    assert len(stack.tasks()) == len(KINDS)


def test_order_view_shows_each_tasks_state(stack: Stack) -> None:
    order_id = _checkout(stack, order_body()).get_json()["order_id"]
    view = stack.client.get(f"/api/orders/{order_id}")
    assert view.status_code == 200
    body = view.get_json()
    assert body["status"] == "paid"
    assert {t["kind"]: t["state"] for t in body["tasks"]} == {k: "scheduled" for k in KINDS}
    assert "customer" not in body  # public endpoint: no personal data


def test_emulator_down_gives_202_and_reconcile_schedules_each_task_once(stack: Stack) -> None:
    stack.emulator.stop()
    resp = _checkout(stack, order_body())
    assert resp.status_code == 202, resp.get_json()
    order_id = resp.get_json()["order_id"]
    assert {t["state"] for t in resp.get_json()["tasks"]} == {"pending"}
    assert len(stack.gateway.charges()) == 1  # paid, kept
    assert len(stack.store.orders.pending_outbox(datetime.now(timezone.utc) + timedelta(seconds=1))) == len(KINDS)

    stack.emulator.start()
    assert reconcile_main(["--grace-seconds", "0"], settings=stack.settings) == 0
    assert reconcile_main(["--grace-seconds", "0"], settings=stack.settings) == 0  # a second run is harmless
    names = [t.name for t in stack.tasks()]
    assert len(names) == len(set(names)) == len(KINDS)
    assert all(f"-{order_id}-" in n for n in names)
    states = {t["state"] for t in stack.client.get(f"/api/orders/{order_id}").get_json()["tasks"]}
    assert states == {"scheduled"}


def test_reconcile_leaves_young_entries_to_the_checkout(stack: Stack) -> None:
    stack.emulator.stop()
    assert _checkout(stack, order_body()).status_code == 202
    stack.emulator.start()
    assert reconcile_main(["--grace-seconds", "3600"], settings=stack.settings) == 0
    assert stack.tasks() == []


def test_reconcile_endpoint_enqueues_pending_entries(stack: Stack) -> None:
    stack.emulator.stop()
    order_id = _checkout(stack, order_body()).get_json()["order_id"]
    stack.emulator.start()
    resp = stack.client.post("/internal/reconcile?grace_seconds=0")
    assert resp.status_code == 200
    body = resp.get_json()
    assert {key: body[key] for key in ("orders", "pending", "scheduled", "failed")} == {
        "orders": 1, "pending": len(KINDS), "scheduled": len(KINDS), "failed": 0}
    assert body["audit"]["looked"] == 0         # the auditor ran: nothing is past its retry span yet
    assert len(_tasks_of(stack, order_id)) == len(KINDS)


class _UnavailableOnce:
    """A gateway backend whose processor is down for the first charge, then recovers."""

    def __init__(self) -> None:
        self.inner = LocalGateway()
        self.failed = False

    def charge(self, idempotency_key: str, amount: Any, currency: str, token: str) -> str:
        if not self.failed:
            self.failed = True
            raise PaymentUnavailable("processor timed out")
        return self.inner.charge(idempotency_key, amount, currency, token)


def test_payment_unavailable_is_503_and_a_retry_with_the_key_completes(tmp_path: Path, emulator: Emulator) -> None:
    gateway = _UnavailableOnce()
    stack = build_stack(tmp_path, emulator)
    app = create_app(stack.settings, store=stack.store, enqueuer=stack.enqueuer, gateway=gateway)
    first = app.test_client().post("/api/checkout", json=order_body(), headers={"Idempotency-Key": "k-503"})
    assert first.status_code == 503
    assert first.get_json()["error"]["code"] == "payment_unavailable"
    assert stack.tasks() == []
    retry = app.test_client().post("/api/checkout", json=order_body(), headers={"Idempotency-Key": "k-503"})
    assert retry.status_code == 201
    assert len(gateway.inner.charges()) == 1
    assert len(stack.tasks()) == len(KINDS)
    stack.enqueuer.close()


class _BlockingGateway:
    """A gateway backend that holds the first charge until released (an in-flight request)."""

    def __init__(self) -> None:
        self.inner = LocalGateway()
        self.entered = threading.Event()
        self.release = threading.Event()

    def charge(self, idempotency_key: str, amount: Any, currency: str, token: str) -> str:
        self.entered.set()
        assert self.release.wait(10), "test never released the charge"
        return self.inner.charge(idempotency_key, amount, currency, token)


def test_same_key_while_the_first_request_runs_is_409(tmp_path: Path, emulator: Emulator) -> None:
    gateway = _BlockingGateway()
    stack = build_stack(tmp_path, emulator)
    app = create_app(stack.settings, store=stack.store, enqueuer=stack.enqueuer, gateway=gateway)
    with LiveServer(app) as live, ThreadPoolExecutor(1) as pool:
        post = lambda: requests.post(f"{live.url}/api/checkout", json=order_body(),  # noqa: E731
                                     headers={"Idempotency-Key": "k-409"}, timeout=20)
        first = pool.submit(post)
        assert gateway.entered.wait(10)
        second = post()
        assert second.status_code == 409
        assert second.json()["error"]["code"] == "request_in_progress"
        gateway.release.set()
        assert first.result().status_code == 201
        assert post().status_code == 201  # afterwards: the stored answer
    assert len(gateway.inner.charges()) == 1
    assert len(stack.tasks()) == len(KINDS)
    stack.enqueuer.close()


def test_fifty_concurrent_checkouts_over_http(stack: Stack) -> None:
    with LiveServer(stack.app) as live, ThreadPoolExecutor(50) as pool:
        def place(i: int) -> requests.Response:
            return requests.post(f"{live.url}/api/checkout", json=order_body(),
                                 headers={"Idempotency-Key": f"conc-{i}"}, timeout=60)
        responses = list(pool.map(place, range(50)))
    assert [r.status_code for r in responses] == [201] * 50, [r.text for r in responses if r.status_code != 201][:3]
    order_ids = {r.json()["order_id"] for r in responses}
    assert len(order_ids) == 50
    names = [t.name for t in stack.tasks()]
    assert len(names) == len(set(names)) == 300
    per_order = {oid: sum(f"-{oid}-" in n for n in names) for oid in order_ids}
    assert set(per_order.values()) == {6}
    assert len(stack.gateway.charges()) == 50


class _Clock:
    """A clock the test sets."""

    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


def test_key_left_unanswered_by_a_crash_is_resumed_for_the_same_order(tmp_path: Path, emulator: Emulator) -> None:
    stack = build_stack(tmp_path, emulator)
    clock = _Clock(datetime.now(timezone.utc))
    app = create_app(stack.settings, store=stack.store, enqueuer=stack.enqueuer, gateway=stack.gateway, clock=clock)
    body = order_body()
    # A first request reserved the key, then its server died before answering.
    assert stack.store.orders.reserve_checkout("k-crash", request_hash(body), "ord_crashed", clock.now()) is None
    post = lambda: app.test_client().post("/api/checkout", json=body, headers={"Idempotency-Key": "k-crash"})  # noqa: E731
    assert post().status_code == 409  # still looks in flight
    clock.current += timedelta(minutes=3)
    resumed = post()
    assert resumed.status_code == 201
    assert resumed.get_json()["order_id"] == "ord_crashed"
    assert _without_token(post().get_json()) == _without_token(resumed.get_json())
    assert [c.idempotency_key for c in stack.gateway.charges()] == ["ord_crashed"]
    assert len(stack.tasks()) == len(KINDS)
    stack.enqueuer.close()


def test_replay_task_adds_a_suffix_and_runs_now(stack: Stack) -> None:
    order_id = _checkout(stack, order_body()).get_json()["order_id"]
    record = stack.store.orders.get_order(order_id)
    assert record is not None
    snapshot = OrderSnapshot.model_validate(record.snapshot)
    body = encode("notify_warehouse", order_id)
    result = stack.enqueuer.replay_body(order_id, "notify_warehouse", body, replay=1)
    assert result.status == "created"
    assert result.task_name.endswith(f"-{order_id}-notify_warehouse-r1")
    again = stack.enqueuer.replay_body(order_id, "notify_warehouse", body, replay=1)
    assert again.status == "exists"
    task = {t.name: t for t in stack.tasks()}[result.task_name]
    assert abs((task.schedule_time - datetime.now(timezone.utc)).total_seconds()) < 5
    assert parse_envelope(task.http_request.body).kind == "notify_warehouse"
    assert len(stack.tasks()) == len(KINDS) + 1


def test_sequential_mode_creates_the_same_tasks(tmp_path: Path, emulator: Emulator) -> None:
    stack = build_stack(tmp_path, emulator, tasks={"enqueue_concurrently": False})
    resp = stack.client.post("/api/checkout", json=order_body())
    assert resp.status_code == 201
    assert len(_tasks_of(stack, resp.get_json()["order_id"])) == len(KINDS)
    stack.enqueuer.close()


def test_slow_cloud_tasks_times_out_to_202_and_reconcile_converges(tmp_path: Path) -> None:
    slow = Emulator(tmp_path, latency_ms=800).start()
    try:
        settings = make_settings(tmp_path, slow.host)
        pause_all(wiring.tasks_client(settings), settings.catalog())
        stack = build_stack(tmp_path, slow, tasks={"enqueue_timeout_seconds": 0.2})
        resp = stack.client.post("/api/checkout", json=order_body())
        assert resp.status_code == 202
        # The creates the client gave up on may still land: reconcile must not double them.
        patient = build_stack(tmp_path, slow, store=stack.store, tasks={"enqueue_timeout_seconds": 30})
        assert reconcile_main(["--grace-seconds", "0"], settings=patient.settings) == 0
        names = [t.name for t in patient.tasks()]
        assert len(names) == len(set(names)) == len(KINDS)
        stack.enqueuer.close()
        patient.enqueuer.close()
    finally:
        slow.stop()


def test_cancel_refunds_the_charge_and_cancels_every_task(stack: Stack) -> None:
    placed = _checkout(stack, order_body()).get_json()
    order_id, token = placed["order_id"], placed["cancel_token"]
    cancelled = stack.client.post(f"/api/orders/{order_id}/cancel", headers={"Authorization": f"Bearer {token}"})
    assert cancelled.status_code == 200, cancelled.get_data(as_text=True)
    body = cancelled.get_json()
    assert body["status"] == "cancelled" and body["refund_id"]
    assert {t["kind"]: t["state"] for t in body["tasks"]} == {k: "cancelled" for k in KINDS}
    assert _tasks_of(stack, order_id) == {}
    view = stack.client.get(f"/api/orders/{order_id}").get_json()
    assert view["status"] == "cancelled" and {t["state"] for t in view["tasks"]} == {"cancelled"}
    again = stack.client.post(f"/api/orders/{order_id}/cancel", headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "order_cancelled"
    assert again.get_json()["error"]["order"]["status"] == "cancelled"
    payment = stack.gateway.ledger.get_payment(order_id)
    assert payment is not None and payment.state == "refunded" and payment.refund_id == body["refund_id"]
    assert view["refund"] == {"refund_id": body["refund_id"], "reason": "cancelled_by_customer"}


def test_cancel_of_an_unknown_order_is_a_404(stack: Stack) -> None:
    resp = stack.client.post("/api/orders/ord_never_placed/cancel", headers={"Authorization": "Bearer x"})
    assert resp.status_code == 404
