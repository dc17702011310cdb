"""Payment gateways for tests: the real ``LocalGateway`` with a refund count, and one that
asks for 3-D Secure the way Stripe does. Subclasses passed to ``create_app``, not patches."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from decimal import Decimal
from typing import Any

from ordertasks.producer.payments import LocalGateway, PaymentRequiresAction

THREE_D_SECURE_TOKEN = "tok_threeDSecure"


class CountingGateway(LocalGateway):
    """``LocalGateway`` that remembers every refund it was asked for (charge ids, in order)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refunds: list[str] = []

    def refund(self, idempotency_key: str, charge_id: str) -> str:
        """Count, then refund as ``LocalGateway`` does."""
        self.refunds.append(charge_id)
        return super().refund(idempotency_key, charge_id)


class ThreeDSecureGateway(CountingGateway):
    """``THREE_D_SECURE_TOKEN`` needs the customer's authentication: ``PaymentRequiresAction``
    with an intent id ``pi_local_<order>``, which the checkout records as ``requires_action`` in
    the ledger (share it with this gateway so a refund finds the payment)."""

    def charge(self, idempotency_key: str, amount: Decimal, currency: str, token: str) -> str:
        """See ``LocalGateway.charge``."""
        if token == THREE_D_SECURE_TOKEN:
            intent = f"pi_local_{idempotency_key}"
            raise PaymentRequiresAction("the card needs 3-D Secure", intent, f"{intent}_secret_test")
        return super().charge(idempotency_key, amount, currency, token)


def sign(payload: bytes, secret: str) -> str:
    """A ``Stripe-Signature`` header value, computed the way Stripe does."""
    stamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def succeeded_event(intent: dict[str, Any]) -> bytes:
    """A ``payment_intent.succeeded`` event for ``intent`` (a new event id each time, as Stripe's
    retries of one event keep theirs; both are handled alike)."""
    body = {"id": f"evt_{uuid.uuid4().hex[:12]}", "object": "event", "type": "payment_intent.succeeded",
            "data": {"object": {**intent, "status": "succeeded"}}}
    return json.dumps(body).encode()
