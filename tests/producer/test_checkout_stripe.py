"""The checkout on Stripe (localstripe): success, decline, 3-D Secure completed by the webhook.

The webhook is delivered by localstripe itself, signed with Stripe's scheme
(``t=…,v1=HMAC-SHA256``) and verified by ``stripe.Webhook.construct_event``. Duplicate,
forged and mismatched events are sent by the test, signed the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from ordertasks.producer.checkout import create_app
from ordertasks.producer.stripe_gateway import StripeGateway
from tests.payments.conftest import SECRET_KEY, localstripe, payment_method, proxy, stripe_get  # noqa: F401
from tests.producer.conftest import Emulator, LiveServer, Stack, build_stack, order_body
from tests.support.servers import wait_until

WEBHOOK_SECRET = "whsec_ordertasks_test"
VISA, DECLINED, THREE_D_SECURE = "4242424242424242", "4000000000000341", "4000002760003184"


@pytest.fixture
def stripe_stack(tmp_path: Path, emulator: Emulator, localstripe: str) -> Iterator[tuple[Stack, Any]]:
    """The checkout app charging through localstripe, with the webhook secret configured."""
    stack = build_stack(tmp_path, emulator, payment={"processor": "stripe", "stripe_secret_key": SECRET_KEY,
                                                     "stripe_webhook_secret": WEBHOOK_SECRET,
                                                     "stripe_api_base": localstripe})
    app = create_app(stack.settings, store=stack.store, enqueuer=stack.enqueuer,
                     gateway=StripeGateway(SECRET_KEY, api_base=localstripe))
    try:
        yield replace(stack, app=app), app
    finally:
        stack.enqueuer.close()
        stack.store.close()


def _pay(stack: Stack, localstripe: str, card: str) -> Any:
    return stack.client.post("/api/checkout", json=order_body(payment_token=payment_method(localstripe, card)))


def _order_tasks(stack: Stack, order_id: str) -> list[Any]:
    return [t for t in stack.tasks() if f"-{order_id}-" in t.name]


def sign(payload: bytes, secret: str = WEBHOOK_SECRET) -> str:
    """A ``Stripe-Signature`` header value, computed the way Stripe does."""
    stamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def _event(intent: dict[str, Any], kind: str = "payment_intent.succeeded") -> bytes:
    return json.dumps({"id": f"evt_{uuid.uuid4().hex[:12]}", "object": "event", "type": kind,
                       "data": {"object": intent}}).encode()


def _post_event(stack: Stack, payload: bytes, signature: str | None = None) -> Any:
    headers = {"Stripe-Signature": signature if signature is not None else sign(payload),
               "Content-Type": "application/json"}
    return stack.client.post("/api/webhooks/stripe", data=payload, headers=headers)


def test_a_card_that_succeeds_is_201_and_the_intent_is_the_charge(stripe_stack: tuple[Stack, Any],
                                                                  localstripe: str) -> None:
    stack, _ = stripe_stack
    resp = _pay(stack, localstripe, VISA)
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    order = stack.store.orders.get_order(body["order_id"])
    assert order is not None and order.status == "paid" and order.charge_id.startswith("pi_")
    intent = stripe_get(localstripe, f"/v1/payment_intents/{order.charge_id}")
    assert intent["amount"] == int(Decimal(body["totals"]["total"]) * 100)
    assert len(_order_tasks(stack, body["order_id"])) == len(stack.catalog.kinds)


def test_a_declined_card_is_402_payment_declined_with_no_tasks(stripe_stack: tuple[Stack, Any],
                                                              localstripe: str) -> None:
    stack, _ = stripe_stack
    resp = _pay(stack, localstripe, DECLINED)
    assert resp.status_code == 402
    assert resp.get_json()["error"]["code"] == "payment_declined"
    assert stack.tasks() == []


def test_three_d_secure_waits_then_the_webhook_pays_and_schedules_once(stripe_stack: tuple[Stack, Any],
                                                                      localstripe: str) -> None:
    stack, app = stripe_stack
    with LiveServer(app) as live:
        requests.post(f"{localstripe}/_config/webhooks/wh_{uuid.uuid4().hex[:8]}", timeout=10,
                      data={"url": f"{live.url}/api/webhooks/stripe", "secret": WEBHOOK_SECRET}).raise_for_status()
        resp = _pay(stack, localstripe, THREE_D_SECURE)
        assert resp.status_code == 402, resp.get_json()
        error = resp.get_json()["error"]
        assert error["code"] == "requires_action" and error["client_secret"].startswith(error["payment_intent"])
        order_id = error["order_id"]
        view = stack.client.get(f"/api/orders/{order_id}").get_json()
        assert view["status"] == "awaiting_payment" and view["tasks"] == []
        assert _order_tasks(stack, order_id) == []
        # The customer completes 3-D Secure; localstripe then delivers payment_intent.succeeded.
        requests.post(f"{localstripe}/v1/payment_intents/{error['payment_intent']}/_authenticate", timeout=10,
                      auth=(SECRET_KEY, ""), data={"client_secret": error["client_secret"], "success": "true"}).raise_for_status()
        wait_until(lambda: stack.client.get(f"/api/orders/{order_id}").get_json()["status"] == "paid",
                   timeout=20, what="the webhook to mark the order paid")
    assert len(_order_tasks(stack, order_id)) == len(stack.catalog.kinds)
    intent = stripe_get(localstripe, f"/v1/payment_intents/{error['payment_intent']}")
    again = _post_event(stack, _event(intent))   # a duplicate delivery
    assert again.status_code == 200 and again.get_json()["result"] == "already_paid"
    assert len(_order_tasks(stack, order_id)) == len(stack.catalog.kinds)


def test_an_event_with_another_amount_never_pays_the_order(stripe_stack: tuple[Stack, Any], localstripe: str) -> None:
    stack, _ = stripe_stack
    error = _pay(stack, localstripe, THREE_D_SECURE).get_json()["error"]
    intent = stripe_get(localstripe, f"/v1/payment_intents/{error['payment_intent']}")
    resp = _post_event(stack, _event({**intent, "amount": 1, "status": "succeeded"}))
    assert resp.status_code == 200 and resp.get_json()["result"] == "amount_mismatch"
    assert stack.client.get(f"/api/orders/{error['order_id']}").get_json()["status"] == "awaiting_payment"
    assert stack.tasks() == []


@pytest.mark.parametrize("signature", ["", "t=1,v1=00", None])
def test_a_forged_or_unsigned_event_is_400_and_changes_nothing(stripe_stack: tuple[Stack, Any], localstripe: str,
                                                              signature: str | None) -> None:
    stack, _ = stripe_stack
    error = _pay(stack, localstripe, THREE_D_SECURE).get_json()["error"]
    intent = stripe_get(localstripe, f"/v1/payment_intents/{error['payment_intent']}")
    payload = _event({**intent, "status": "succeeded"})
    header = sign(payload, "whsec_someone_else") if signature is None else signature
    resp = _post_event(stack, payload, header)
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "invalid_signature"
    assert stack.client.get(f"/api/orders/{error['order_id']}").get_json()["status"] == "awaiting_payment"


def test_other_events_and_unknown_orders_are_acknowledged(stripe_stack: tuple[Stack, Any]) -> None:
    stack, _ = stripe_stack
    failed = _post_event(stack, _event({"id": "pi_x", "amount": 1, "currency": "eur", "metadata": {}},
                                       "payment_intent.payment_failed"))
    assert failed.status_code == 200 and failed.get_json()["result"] == "ignored"
    unknown = _post_event(stack, _event({"id": "pi_y", "amount": 1, "currency": "eur",
                                         "metadata": {"order_id": "ord_never_placed"}}))
    assert unknown.status_code == 200 and unknown.get_json()["result"] == "unknown_order"
    assert stack.tasks() == []


def test_without_a_webhook_secret_the_endpoint_is_404(stack: Stack) -> None:
    resp = _post_event(stack, _event({"id": "pi_z"}))
    assert resp.status_code == 404
    assert resp.get_json()["error"]["code"] == "webhook_not_configured"
