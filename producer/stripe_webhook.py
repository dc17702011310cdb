"""``POST /api/webhooks/stripe``: Stripe's events, verified with the library's webhook helper.

Only ``payment_intent.succeeded`` changes anything: it completes an order that was left
``awaiting_payment`` (3-D Secure) — mark it paid and schedule its tasks. If the order was
cancelled while it waited, the payment is refunded instead (result ``refunded``, the ledger
says ``paid_after_cancel``): the customer is never charged for an order that will not ship.
Every other event is acknowledged (200) and ignored. Duplicate and out-of-order deliveries
are harmless: an order already paid is left alone, a refund already recorded is not made
again (``already_refunded``; the refund's idempotency key covers two deliveries at once),
task names are deterministic, and an event for an order we do not know, or for another
amount than the order's, is acknowledged and logged, never turned into a paid order. A bad
signature is 400, so a forged call changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stripe

from ordertasks.producer.api_errors import ApiError

SUCCEEDED_EVENT = "payment_intent.succeeded"


@dataclass(frozen=True)
class IntentSucceeded:
    """What the checkout needs from a ``payment_intent.succeeded`` event."""

    event_id: str
    payment_id: str
    order_id: str | None
    amount_minor: int
    currency: str


def verified_event(payload: bytes, signature: str | None, secret: str) -> Any:
    """The event, if ``signature`` (``Stripe-Signature``) signs ``payload`` with ``secret``; else 400."""
    if not signature:
        raise ApiError(400, "invalid_signature", "the Stripe-Signature header is missing")
    try:
        return stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError as exc:
        raise ApiError(400, "invalid_signature", "the Stripe-Signature does not sign this payload with our "
                       "webhook secret (or is older than 5 minutes)") from exc
    except ValueError as exc:
        raise ApiError(400, "invalid_json", "the webhook payload is not a Stripe event") from exc


def intent_succeeded(event: Any) -> IntentSucceeded | None:
    """The succeeded intent an event reports, or ``None`` for any other event."""
    if event.type != SUCCEEDED_EVENT:
        return None
    try:
        intent = event.data.object.to_dict()
        metadata = intent.get("metadata") or {}
        return IntentSucceeded(event_id=str(event.id), payment_id=str(intent["id"]),
                               order_id=metadata.get("order_id"), amount_minor=int(intent["amount"]),
                               currency=str(intent["currency"]).upper())
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ApiError(400, "invalid_event", f"the {SUCCEEDED_EVENT} event lacks a PaymentIntent with id, "
                       "amount and currency") from exc
