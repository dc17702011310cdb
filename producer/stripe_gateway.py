"""The payment port on Stripe, with the official ``stripe`` library (PaymentIntents).

``charge`` creates and confirms one PaymentIntent per order, with the idempotency key
``ordertasks-charge-<order_id>`` and ``metadata.order_id`` (how the webhook finds the
order). The library retries network failures with the *same* key, and a retried checkout
sends the same key again, so Stripe answers with the first PaymentIntent instead of
charging twice: nothing is charged twice, whatever fails where.

    intent status / error                 → port
    succeeded                             → the intent id
    requires_action, processing           → PaymentRequiresAction (id, client_secret): the
                                            customer authenticates; the webhook completes
    requires_payment_method, CardError    → PaymentDeclined
    InvalidRequestError (bad token, …)    → PaymentDeclined (the payment method was refused)
    IdempotencyError                      → PaymentDeclined (key reused for another amount)
    connection errors, timeouts, 429, 5xx,
    authentication/permission errors      → PaymentUnavailable (503; retry with the same key)

The secret key is held by the client and never appears in a message or a log line.
``api_base`` points the library at a stand-in (localstripe in the tests).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import stripe

from ordertasks.handlers.contract import minor_units
from ordertasks.producer.payments import PaymentDeclined, PaymentRequiresAction, PaymentUnavailable

log = logging.getLogger("ordertasks.producer.stripe")
T = TypeVar("T")
WAITING = ("requires_action", "processing")
_UNAVAILABLE = (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError, stripe.AuthenticationError,
                stripe.PermissionError)
_DECLINED = (stripe.CardError, stripe.InvalidRequestError, stripe.IdempotencyError)


def charge_key(order_id: str) -> str:
    """The Stripe idempotency key of an order's charge."""
    return f"ordertasks-charge-{order_id}"


def refund_key(key: str) -> str:
    """The Stripe idempotency key of a refund."""
    return f"ordertasks-refund-{key}"


class StripeGateway:
    """``PaymentGateway`` over Stripe's PaymentIntents API."""

    def __init__(self, secret_key: str, *, api_base: str | None = None, timeout: float = 20.0,
                 max_network_retries: int = 2) -> None:
        self.client = stripe.StripeClient(
            secret_key, base_addresses={"api": api_base} if api_base else {},
            max_network_retries=max_network_retries, http_client=stripe.RequestsClient(timeout=timeout))

    def charge(self, idempotency_key: str, amount: Decimal, currency: str, token: str) -> str:
        """See ``PaymentGateway.charge``; ``token`` is a PaymentMethod id (``pm_…``)."""
        params: dict[str, Any] = {
            "amount": minor_units(amount, currency), "currency": currency.lower(), "payment_method": token,
            "payment_method_types": ["card"], "confirm": True, "metadata": {"order_id": idempotency_key}}
        intent = _call(lambda: self.client.v1.payment_intents.create(
            params=params, options={"idempotency_key": charge_key(idempotency_key)}))  # type: ignore[arg-type]
        return _outcome(intent)

    def refund(self, idempotency_key: str, charge_id: str) -> str:
        """See ``PaymentGateway.refund``; ``charge_id`` is the PaymentIntent id."""
        refund = _call(lambda: self.client.v1.refunds.create(
            params={"payment_intent": charge_id}, options={"idempotency_key": refund_key(idempotency_key)}))
        return str(refund.id)


def _outcome(intent: Any) -> str:
    if intent.status == "succeeded":
        return str(intent.id)
    if intent.status in WAITING:
        raise PaymentRequiresAction("the card needs the customer's authentication (3-D Secure): complete it "
                                    "with the client_secret; the order is paid when Stripe confirms it",
                                    str(intent.id), str(intent.client_secret))
    error = getattr(intent, "last_payment_error", None)
    reason = getattr(error, "message", None) or f"payment status {intent.status}"
    raise PaymentDeclined(f"the card was declined ({reason}); use another payment method")


def _call(action: Callable[[], T]) -> T:
    try:
        return action()
    except _DECLINED as exc:
        raise PaymentDeclined(_declined_message(exc)) from exc
    except _UNAVAILABLE as exc:
        log.warning("stripe unavailable", extra={"error_type": type(exc).__name__, "status": exc.http_status})
        raise PaymentUnavailable(f"the payment processor could not be reached ({type(exc).__name__}); "
                                 "nothing was charged twice") from exc


def _declined_message(exc: stripe.StripeError) -> str:
    if isinstance(exc, stripe.IdempotencyError):
        return "this order was already charged with other details; place a new order"
    text = exc.user_message or "the payment method was refused"
    return f"the card was declined: {text}"
