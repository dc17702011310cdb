"""The handler over real HTTP: outcomes, status codes, exactly-once effects, failed records, auth."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import pytest
from pypdf import PdfReader

from ordertasks.handlers.backends.sqlite import to_text
from ordertasks.handlers.config import load_catalog
from ordertasks.handlers.contract import encode
from tests.support.orders import store_paid_order
from ordertasks.infra.mailsink import MailSink
from tests.effects.orders import eur_order
from tests.functions.conftest import DISPATCHER, HandlerStack
from tests.support.issuer import RsaKey
from tests.support.servers import wait_until

ORDER = "ord_http_1"
KINDS = ("send_confirmation_email", "record_analytics", "generate_invoice", "notify_warehouse")


def body(kind: str, order_id: str = ORDER) -> bytes:
    return encode(kind, order_id)


@pytest.fixture(autouse=True)
def placed(stack: HandlerStack) -> None:
    """The order every delivery here refers to, stored as paid (bodies are references)."""
    store_paid_order(stack.store, ORDER, eur_order())


def effects_for(stack: HandlerStack, order_id: str = ORDER) -> dict[str, int]:
    """Count every kind of effect the order has had."""
    day = date(2024, 3, 1)
    return {
        "emails": sum(1 for m in stack.mail.messages if order_id in str(m["Subject"])),
        "pdfs": sum(1 for p in stack.pdfs() if p.name == f"{order_id}.pdf"),
        "warehouse": sum(1 for k in stack.warehouse.state.notifications if k.startswith(order_id + ":")),
        "analytics_orders": stack.store.analytics.daily_aggregate(day).orders,
    }


@pytest.mark.parametrize("kind", KINDS)
def test_valid_task_is_done_once_and_redelivery_is_a_duplicate(stack: HandlerStack, kind: str) -> None:
    first = stack.deliver(body(kind))
    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == "done"
    again = stack.deliver(body(kind), retry_count=1)
    assert again.status_code == 200
    assert again.json()["outcome"] == "duplicate"
    counts = effects_for(stack)
    expected = {"send_confirmation_email": "emails", "generate_invoice": "pdfs",
                "notify_warehouse": "warehouse", "record_analytics": "analytics_orders"}[kind]
    assert counts[expected] == 1
    assert sum(counts.values()) == 1, counts


def test_twenty_concurrent_identical_deliveries_give_one_effect_each(stack: HandlerStack) -> None:
    deliveries = [body(kind) for kind in KINDS for _ in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(lambda b: stack.deliver(b).status_code, deliveries))
    assert set(statuses) <= {200, 503}
    # Deliveries that met a live lease got 503; Cloud Tasks would redeliver them: do so.
    for kind in KINDS:
        wait_until(lambda k=kind: stack.deliver(body(k), retry_count=1).json()["outcome"] == "duplicate",
                   timeout=10, what=f"{kind} done")
    assert effects_for(stack) == {"emails": 1, "pdfs": 1, "warehouse": 1, "analytics_orders": 1}
    pdf = PdfReader(stack.pdfs()[0])
    assert "1,383.92" in pdf.pages[0].extract_text()


@pytest.mark.parametrize("raw, error_type", [
    (b"{not json", "InvalidPayload"),
    (json.dumps({"kind": "launch_rockets", "v": 2, "order_id": ORDER}).encode(), "UnknownTaskKind"),
    (json.dumps({"kind": "notify_warehouse", "v": 2}).encode(), "InvalidPayload"),
    (json.dumps({"kind": "notify_warehouse", "v": 3, "order_id": ORDER}).encode(), "InvalidPayload"),
    (json.dumps({"kind": "notify_warehouse", "v": 2, "order_id": "ord_never_placed"}).encode(), "UnknownOrder"),
])
def test_bad_payload_is_dead_with_a_failed_record_and_no_effect(stack: HandlerStack, raw: bytes,
                                                                 error_type: str) -> None:
    resp = stack.deliver(raw, queue="ordertasks-warehouse", task_name="bad-1")
    assert resp.status_code == 200
    assert resp.json()["outcome"] == "dead"
    failed = stack.store.failed.list_failed()
    assert len(failed) == 1
    assert failed[0].error_type == error_type
    assert failed[0].status == "open" and failed[0].task_name == "bad-1"
    assert effects_for(stack) == {"emails": 0, "pdfs": 0, "warehouse": 0, "analytics_orders": 0}


def first_attempt_long_ago(stack: HandlerStack, kind: str, seconds: float) -> None:
    """Move the effect's first attempt ``seconds`` into the past, as if the retries had taken that long."""
    moved = datetime.now(UTC) - timedelta(seconds=seconds)
    stack.store.db.conn().execute("UPDATE idempotency SET first_attempt_at = ? WHERE order_id = ? AND kind = ?",
                                  (to_text(moved), ORDER, kind))


def test_warehouse_503_is_retried_then_dead_on_the_final_attempt(stack: HandlerStack) -> None:
    stack.warehouse.state.mode = "down"
    queue = load_catalog().queues["ordertasks-warehouse"]
    retry = stack.deliver(body("notify_warehouse"), queue=queue.name, retry_count=0)
    assert retry.status_code == 503
    assert retry.json()["outcome"] == "retry"
    assert stack.store.failed.list_failed() == []
    last = queue.max_attempts - 1
    if queue.max_retry_duration_seconds:      # retries stop only when attempts AND duration are used up
        not_yet = stack.deliver(body("notify_warehouse"), queue=queue.name, retry_count=last)
        assert not_yet.json()["outcome"] == "retry", "attempts are used up but the retry duration is not"
        first_attempt_long_ago(stack, "notify_warehouse", queue.max_retry_duration_seconds + 1)
    final = stack.deliver(body("notify_warehouse"), queue=queue.name, retry_count=last)
    assert final.status_code == 200
    assert final.json()["outcome"] == "dead"
    [record] = stack.store.failed.list_failed()
    assert (record.id, record.error_type, record.attempts) == (f"{ORDER}:notify_warehouse", "DependencyUnavailable",
                                                               queue.max_attempts)
    assert record.payload["order_id"] == ORDER


def test_warehouse_4xx_is_dead_at_once(stack: HandlerStack) -> None:
    stack.warehouse.state.mode = "reject"
    resp = stack.deliver(body("notify_warehouse"), queue="ordertasks-warehouse")
    assert (resp.status_code, resp.json()["outcome"]) == (200, "dead")
    [record] = stack.store.failed.list_failed()
    assert record.error_type == "Rejected" and "422" in record.error


def test_smtp_down_is_retryable(stack: HandlerStack) -> None:
    port = stack.mail.controller.port
    stack.mail.stop()
    resp = stack.deliver(body("send_confirmation_email"), queue="ordertasks-email")
    assert resp.status_code == 503
    assert stack.store.failed.list_failed() == []
    stack.mail = MailSink(port=port).start()
    assert stack.deliver(body("send_confirmation_email"), retry_count=1).json()["outcome"] == "done"
    assert effects_for(stack)["emails"] == 1


def _other_key_token(stack: HandlerStack) -> str:
    return stack.issuer.token(signer=RsaKey("test-key-1").signer)


@pytest.mark.parametrize("case, status", [
    ("missing", 401), ("malformed", 401), ("expired", 401), ("wrong_audience", 401),
    ("wrong_signer", 401), ("wrong_issuer", 401), ("alg_none", 401), ("hs256", 401),
    ("wrong_service_account", 403), ("unverified_email", 403),
])
def test_bad_tokens_are_refused_with_no_effect(stack: HandlerStack, case: str, status: int) -> None:
    tokens = {
        "missing": lambda: None,
        "malformed": lambda: "not.a.jwt-at-all",
        "expired": lambda: stack.issuer.token(iat=1_600_000_000, exp=1_600_003_600),
        "wrong_audience": lambda: stack.issuer.token(aud="https://elsewhere.example/"),
        "wrong_signer": lambda: _other_key_token(stack),
        "wrong_issuer": lambda: stack.issuer.token(iss="https://evil.example"),
        "alg_none": lambda: stack.issuer.unsigned_token(),
        "hs256": lambda: stack.issuer.hs256_token(),
        "wrong_service_account": lambda: stack.issuer.token(email="someone@evil.iam.gserviceaccount.com"),
        "unverified_email": lambda: stack.issuer.token(email_verified=False),
    }
    resp = stack.deliver(body("send_confirmation_email"), token=tokens[case]())
    assert resp.status_code == status, resp.text
    assert "error" in resp.json()
    assert effects_for(stack)["emails"] == 0
    assert stack.store.effects.get_effect(ORDER, "send_confirmation_email") is None


def test_get_is_refused_without_touching_anything(stack: HandlerStack) -> None:
    resp = stack.session.get(stack.url, timeout=5)
    assert resp.status_code == 405
    assert DISPATCHER.startswith("ordertasks-dispatcher@")


def test_an_old_body_with_inline_data_is_read_as_a_reference(stack: HandlerStack) -> None:
    """A v1 body (inline data, still in queues at upgrade) cannot choose who gets the email."""
    forged = {"kind": "send_confirmation_email", "v": 1, "order_id": ORDER,
              "data": {"customer": {"name": "Mallory", "email": "mallory@evil.example"}, "items": []}}
    resp = stack.deliver(json.dumps(forged).encode())
    assert resp.status_code == 200 and resp.json()["outcome"] == "done", resp.text
    [message] = stack.mail.messages
    assert message["To"].addresses[0].addr_spec == eur_order().customer.email
    assert "evil.example" not in message.as_string()


def test_a_task_for_an_order_never_placed_causes_nothing_but_a_failed_record(stack: HandlerStack) -> None:
    for kind in ("send_confirmation_email", "notify_warehouse", "record_analytics", "generate_invoice"):
        resp = stack.deliver(body(kind, "ord_forged_99"))
        assert resp.status_code == 200 and resp.json()["outcome"] == "dead", resp.text
    assert effects_for(stack, "ord_forged_99") == {"emails": 0, "pdfs": 0, "warehouse": 0, "analytics_orders": 0}
    assert {f.error_type for f in stack.store.failed.list_failed()} == {"UnknownOrder"}
