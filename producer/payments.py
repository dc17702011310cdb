"""The payment port and the local gateway that stands in for a card processor.

    PaymentError
    ├── PaymentDeclined        the card was refused: final, answer 402 payment_declined
    ├── PaymentRequiresAction  the customer must authenticate (3-D Secure): 402 requires_action
    │                          with the client secret; a webhook completes the order
    └── PaymentUnavailable     the processor could not be reached; nothing was charged, retry

Every charge carries an idempotency key (the order id): a second ``charge`` with the same
key returns the first charge's id and never charges again, which is what makes a retried
checkout safe. ``producer.stripe_gateway.StripeGateway`` is the real processor;
``LocalGateway`` (here) takes test tokens and no money.

``LocalGateway`` keeps its ledger in a ``PaymentLedger`` (``producer.ledger``): wired, that
is the order store's database (SQLite table ``payments``, or Firestore ``payments/{id}`` in
a cloud test deployment), so "never charged twice" survives restarts and spans instances.
``LocalGateway()`` alone keeps it in memory; ``LocalGateway(path)`` in that SQLite file.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from ordertasks.handlers.errors import OrderTasksError
from ordertasks.producer.ledger import REFUNDED, SUCCEEDED, MemoryLedger, Payment, PaymentLedger

DECLINED_TOKEN = "tok_declined"
UNAVAILABLE_TOKEN = "tok_unavailable"
ACCEPTED_TOKENS = frozenset({"tok_visa", "tok_mastercard", "tok_amex"})


class PaymentError(OrderTasksError):
    """Base of the payment port's errors."""


class PaymentDeclined(PaymentError):
    """The card was refused; retrying the same token will not help."""


class PaymentUnavailable(PaymentError):
    """The processor could not be reached or timed out; nothing was charged."""


class PaymentRequiresAction(PaymentError):
    """The customer must complete an authentication (3-D Secure) before money moves."""

    def __init__(self, message: str, payment_id: str, client_secret: str) -> None:
        super().__init__(message)
        self.payment_id = payment_id
        self.client_secret = client_secret


class PaymentGateway(Protocol):
    """Charges a payment token, at most once per idempotency key."""

    def charge(self, idempotency_key: str, amount: Decimal, currency: str, token: str) -> str:
        """Charge ``amount`` and return the charge id.

        The same key again returns the same charge id without charging (the amount and
        currency must match, else ``PaymentDeclined``). Raises ``PaymentDeclined`` for a
        refused card, ``PaymentRequiresAction`` when the customer must authenticate first,
        and ``PaymentUnavailable`` when nothing could be charged right now.
        """
        ...

    def refund(self, idempotency_key: str, charge_id: str) -> str:
        """Refund a captured charge in full and return the refund id (once per key).

        Raises ``PaymentUnavailable`` when the processor cannot be reached (retry with the
        same key), ``PaymentDeclined`` when the charge cannot be refunded.
        """
        ...


@dataclass(frozen=True)
class Charge:
    """One line of the local gateway's ledger."""

    charge_id: str
    idempotency_key: str
    amount: Decimal
    currency: str
    token: str
    created_at: datetime


class LocalGateway:
    """Test tokens: ``tok_visa`` (and other ``ACCEPTED_TOKENS``) succeed, ``tok_declined``
    is refused, ``tok_unavailable`` fails as an outage; any other token is declined.

    ``test=True`` marks each ledger record as a test payment (a cloud test deployment).
    """

    def __init__(self, path: str | Path = ":memory:", *, ledger: PaymentLedger | None = None,
                 test: bool = False) -> None:
        self.ledger = ledger or _ledger_at(path)
        self.test = test

    def charge(self, idempotency_key: str, amount: Decimal, currency: str, token: str) -> str:
        """See ``PaymentGateway.charge``."""
        if token == UNAVAILABLE_TOKEN:
            raise PaymentUnavailable("the payment processor is unavailable (test token tok_unavailable); "
                                     "nothing was charged, retry later")
        existing = self.ledger.get_payment(idempotency_key)
        if existing is not None:
            return _same_charge(existing, amount, currency)
        if token == DECLINED_TOKEN or token not in ACCEPTED_TOKENS:
            raise PaymentDeclined("the card was declined; use another payment method")
        payment = Payment(idempotency_key, "local", "ch_" + secrets.token_hex(12), amount, currency, SUCCEEDED,
                          datetime.now(timezone.utc), token, test=self.test)
        # Another request (thread, process, instance) may record this key first: same answer.
        return _same_charge(self.ledger.record_payment(payment), amount, currency)

    def refund(self, idempotency_key: str, charge_id: str) -> str:
        """See ``PaymentGateway.refund``."""
        payment = next((p for p in self.ledger.list_payments() if p.payment_id == charge_id), None)
        if payment is None:
            raise PaymentDeclined(f"no charge {charge_id!r} to refund")
        if payment.state == REFUNDED and payment.refund_id:
            return payment.refund_id
        refunded = self.ledger.set_state(payment.order_id, REFUNDED, "re_" + secrets.token_hex(12))
        return refunded.refund_id if refunded and refunded.refund_id else ""

    def charges(self) -> list[Charge]:
        """The whole ledger, oldest first (for tests and the local stack's inspection)."""
        return [Charge(p.payment_id, p.order_id, p.amount, p.currency, p.token, p.created_at)
                for p in self.ledger.list_payments() if p.processor == "local"]

    def close(self) -> None:
        """Nothing to release: each ledger call uses its own connection."""


def _ledger_at(path: str | Path) -> PaymentLedger:
    if str(path) == ":memory:":
        return MemoryLedger()
    from ordertasks.producer.ledger_sqlite import SqliteLedger

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return SqliteLedger(Path(path))


def _same_charge(existing: Payment, amount: Decimal, currency: str) -> str:
    if existing.amount != amount or existing.currency != currency:
        raise PaymentDeclined(f"idempotency key {existing.order_id!r} was already used for "
                              f"{existing.amount} {existing.currency}; use a new key for a new charge")
    return existing.payment_id
