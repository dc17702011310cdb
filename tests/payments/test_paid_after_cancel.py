"""Issue 28, F5: a payment that succeeds for an order cancelled while it awaited payment is
refunded, exactly once, however often Stripe delivers the event.

Before, ``payment_intent.succeeded`` for such an order answered ``paid`` and refunded
nothing: the customer was charged and got neither goods nor money back. Each case runs
against the local gateway (a 3-D Secure variant of it, sharing the ledger as the wiring does)
and against localstripe; events are signed with the webhook secret and posted to the app.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from ordertasks.handlers.contract import minor_units
from ordertasks.producer import wiring
from ordertasks.producer.checkout import create_app
from ordertasks.producer.ledger import PaymentLedger
from ordertasks.producer.payments import PaymentUnavailable
from ordertasks.producer.stripe_gateway import StripeGateway, refund_key
from tests.payments.conftest import SECRET_KEY, Proxy, localstripe, payment_method, proxy, stripe_get  # noqa: F401
from tests.payments.gateways import THREE_D_SECURE_TOKEN, ThreeDSecureGateway, sign, succeeded_event
from tests.producer.conftest import Emulator, Stack, build_stack, emulator, order_body  # noqa: F401

WEBHOOK_SECRET = "whsec_paid_after_cancel"
STRIPE_3DS = "4000002760003184"


@dataclass
class Shop:
    """The checkout app, its ledger and gateway, and the stack under them."""

    stack: Stack
    app: Flask
    ledger: PaymentLedger
    gateway: Any

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.app.test_client().post(path, **kwargs)

    def view(self, order_id: str) -> dict[str, Any]:
        return self.app.test_client().get(f"/api/orders/{order_id}").get_json()  # type: ignore[no-any-return]

    def deliver(self, intent: dict[str, Any]) -> Any:
        """One delivery of ``payment_intent.succeeded`` for ``intent``, signed."""
        payload = succeeded_event(intent)
        return self.post("/api/webhooks/stripe", data=payload, headers={
            "Stripe-Signature": sign(payload, WEBHOOK_SECRET), "Content-Type": "application/json"})

    def cancel(self, order_id: str, token: str) -> Any:
        return self.post(f"/api/orders/{order_id}/cancel", headers={"Authorization": f"Bearer {token}"})

    def queued(self, order_id: str) -> list[str]:
        return [t.name for t in self.stack.tasks() if f"-{order_id}-" in t.name]


class FlakyRefunds(ThreeDSecureGateway):
    """Refunds fail as an outage ``outages`` times first (the processor was down)."""

    outages = 0

    def refund(self, idempotency_key: str, charge_id: str) -> str:
        """See ``PaymentGateway.refund``."""
        if self.outages:
            self.outages -= 1
            raise PaymentUnavailable("the payment processor is unavailable (test)")
        return super().refund(idempotency_key, charge_id)


def _shop(tmp_path: Path, emulator: Emulator, gateway_for: Any, **payment: Any) -> Shop:  # noqa: F811
    stack = build_stack(tmp_path, emulator, payment={"stripe_webhook_secret": WEBHOOK_SECRET, **payment})
    ledger = wiring.payment_ledger(stack.settings)       # shared with the gateway, as the wiring does
    gateway = gateway_for(ledger)
    app = create_app(stack.settings, store=stack.store, enqueuer=stack.enqueuer, gateway=gateway, ledger=ledger)
    return Shop(stack, app, ledger, gateway)


@pytest.fixture
def local_shop(tmp_path: Path, emulator: Emulator) -> Iterator[Shop]:  # noqa: F811
    """The local gateway, with a 3-D Secure test token and a refund count."""
    shop = _shop(tmp_path, emulator, lambda ledger: FlakyRefunds(ledger=ledger))
    yield shop
    shop.stack.enqueuer.close()
    shop.stack.store.close()


def _awaiting(shop: Shop, token: str) -> dict[str, Any]:
    resp = shop.post("/api/checkout", json=order_body(payment_token=token))
    assert resp.status_code == 402, resp.get_data(as_text=True)
    error = resp.get_json()["error"]
    assert error["code"] == "requires_action" and error["cancel_token"]
    assert shop.view(error["order_id"])["status"] == "awaiting_payment"
    return error  # type: ignore[no-any-return]


def _cancel_while_awaiting(shop: Shop, error: dict[str, Any]) -> None:
    resp = shop.cancel(error["order_id"], error["cancel_token"])
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["refund_id"] is None        # nothing was taken yet


def _intent_of(shop: Shop, error: dict[str, Any]) -> dict[str, Any]:
    totals = shop.view(error["order_id"])["totals"]
    return {"id": error["payment_intent"], "object": "payment_intent", "currency": totals["currency"].lower(),
            "amount": minor_units(Decimal(totals["total"]), totals["currency"]),
            "metadata": {"order_id": error["order_id"]}}


def _refunded_once(shop: Shop, order_id: str, refund_id: str) -> None:
    payment = shop.ledger.get_payment(order_id)
    assert payment is not None and (payment.state, payment.refund_id) == ("refunded", refund_id)
    assert payment.refund_reason == "paid_after_cancel"
    view = shop.view(order_id)
    assert view["status"] == "cancelled" and view["tasks"] == []
    assert view["refund"] == {"refund_id": refund_id, "reason": "paid_after_cancel"}
    assert shop.queued(order_id) == []
    assert shop.stack.store.orders.get_order(order_id).status == "cancelled"  # type: ignore[union-attr]


def test_success_after_cancel_is_refunded_once_though_delivered_twice(local_shop: Shop) -> None:
    error = _awaiting(local_shop, THREE_D_SECURE_TOKEN)
    _cancel_while_awaiting(local_shop, error)
    intent = _intent_of(local_shop, error)
    first = local_shop.deliver(intent)
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json()["result"] == "refunded"
    again = local_shop.deliver(intent)                    # Stripe delivers the event again
    assert again.status_code == 200
    assert again.get_json() == {"received": True, "order_id": error["order_id"], "result": "already_refunded",
                                     "refund_id": first.get_json()["refund_id"]}
    assert local_shop.gateway.refunds == [error["payment_intent"]]
    _refunded_once(local_shop, error["order_id"], first.get_json()["refund_id"])


def test_a_processor_outage_is_503_so_stripe_retries_and_the_retry_refunds_once(local_shop: Shop) -> None:
    error = _awaiting(local_shop, THREE_D_SECURE_TOKEN)
    _cancel_while_awaiting(local_shop, error)
    local_shop.gateway.outages = 1
    down = local_shop.deliver(_intent_of(local_shop, error))
    assert down.status_code == 503 and down.get_json()["error"]["code"] == "payment_unavailable"
    assert local_shop.ledger.get_payment(error["order_id"]).state == "requires_action"  # type: ignore[union-attr]
    retried = local_shop.deliver(_intent_of(local_shop, error))
    assert retried.get_json()["result"] == "refunded"
    assert local_shop.deliver(_intent_of(local_shop, error)).get_json()["result"] == "already_refunded"
    assert local_shop.gateway.refunds == [error["payment_intent"]]     # the outage refunded nothing
    _refunded_once(local_shop, error["order_id"], retried.get_json()["refund_id"])


def test_an_order_paid_before_its_cancel_is_not_refunded_again_by_a_late_event(local_shop: Shop) -> None:
    placed = local_shop.post("/api/checkout", json=order_body()).get_json()
    order_id = placed["order_id"]
    cancelled = local_shop.cancel(order_id, placed["cancel_token"]).get_json()
    charge_id = local_shop.stack.store.orders.get_order(order_id).charge_id  # type: ignore[union-attr]
    late = local_shop.deliver({"id": charge_id, "amount": 1, "currency": "eur", "metadata": {"order_id": order_id}})
    assert late.get_json()["result"] == "already_cancelled"
    assert local_shop.gateway.refunds == [charge_id]
    assert local_shop.view(order_id)["refund"] == {"refund_id": cancelled["refund_id"], "reason": "cancelled_by_customer"}


def test_awaiting_payment_is_paid_as_before_when_nobody_cancelled(local_shop: Shop) -> None:
    error = _awaiting(local_shop, THREE_D_SECURE_TOKEN)
    paid = local_shop.deliver(_intent_of(local_shop, error))
    assert paid.get_json()["result"] == "paid"
    assert local_shop.view(error["order_id"])["status"] == "paid" and local_shop.gateway.refunds == []
    assert len(local_shop.queued(error["order_id"])) == len(local_shop.stack.catalog.kinds)


# --- localstripe ----------------------------------------------------------------------------


@pytest.fixture
def stripe_shop(tmp_path: Path, emulator: Emulator, proxy: Proxy) -> Iterator[Shop]:  # noqa: F811
    """The checkout charging through localstripe, behind the recording proxy."""
    shop = _shop(tmp_path, emulator, lambda ledger: StripeGateway(SECRET_KEY, api_base=proxy.url),
                 processor="stripe", stripe_secret_key=SECRET_KEY, stripe_api_base=proxy.url)
    yield shop
    shop.stack.enqueuer.close()
    shop.stack.store.close()


def test_on_stripe_a_3ds_payment_completed_after_the_cancel_is_refunded_once(stripe_shop: Shop, proxy: Proxy,
                                                                            localstripe: str) -> None:  # noqa: F811
    error = _awaiting(stripe_shop, payment_method(localstripe, STRIPE_3DS))
    _cancel_while_awaiting(stripe_shop, error)
    # The customer completes 3-D Secure anyway (another tab): Stripe takes the money.
    requests.post(f"{localstripe}/v1/payment_intents/{error['payment_intent']}/_authenticate", timeout=10,
                  auth=(SECRET_KEY, ""), data={"client_secret": error["client_secret"], "success": "true"}
                  ).raise_for_status()
    intent = stripe_get(localstripe, f"/v1/payment_intents/{error['payment_intent']}")
    assert intent["status"] == "succeeded"
    first = stripe_shop.deliver(intent)
    assert first.status_code == 200 and first.get_json()["result"] == "refunded", first.get_data(as_text=True)
    assert stripe_shop.deliver(intent).get_json()["result"] == "already_refunded"
    [refund_call] = proxy.posts("/v1/refunds")
    assert refund_call.headers["Idempotency-Key"] == refund_key(f"{error['order_id']}:refund")
    refunds = stripe_get(localstripe, f"/v1/refunds?payment_intent={error['payment_intent']}")["data"]
    assert [r["id"] for r in refunds] == [first.get_json()["refund_id"]]
    assert refunds[0]["amount"] == intent["amount"]
    _refunded_once(stripe_shop, error["order_id"], first.get_json()["refund_id"])


def test_on_stripe_a_customer_cancel_records_the_refund_so_a_late_event_refunds_nothing(
        stripe_shop: Shop, proxy: Proxy, localstripe: str) -> None:  # noqa: F811
    placed = stripe_shop.post("/api/checkout", json=order_body(payment_token=payment_method(localstripe, "4242424242424242")))
    assert placed.status_code == 201, placed.get_data(as_text=True)
    order_id, token = placed.get_json()["order_id"], placed.get_json()["cancel_token"]
    refund_id = stripe_shop.cancel(order_id, token).get_json()["refund_id"]
    payment = stripe_shop.ledger.get_payment(order_id)
    assert payment is not None and (payment.processor, payment.state, payment.refund_id, payment.refund_reason) == \
        ("stripe", "refunded", refund_id, "cancelled_by_customer")
    intent = stripe_get(localstripe, f"/v1/payment_intents/{payment.payment_id}")
    assert stripe_shop.deliver(intent).get_json()["result"] == "already_cancelled"
    assert len(proxy.posts("/v1/refunds")) == 1
