"""The payment ledger: one record per order of the money the checkout took or is waiting for.

It lives in the order store's database (table ``payments`` in the SQLite file, collection
``payments/{order_id}`` in Firestore), never in a side file on one instance's disk:

- the local gateway keeps its charges here, so "never charged twice" holds across restarts
  and, in a test deployment in the cloud, across instances;
- the checkout records a Stripe payment that needs the customer's action (3-D Secure) as
  ``requires_action``, which the order view shows as ``awaiting_payment`` until the Stripe
  webhook reports it ``succeeded``;
- a refund sets ``refunded`` with the refund's id and why it was made (``refund_reason``:
  ``REFUND_REASONS``), so an order's view says why its money went back;
- each order placed through our checkout keeps the SHA-256 digest of its **cancel token**
  (never the token): the credential a customer presents to cancel it
  (``POST /api/orders/<id>/cancel``, ``producer.checkout``). ``new_cancel_token``,
  ``cancel_digest`` and ``token_matches`` below are the whole scheme.

``PaymentLedger`` is the port; ``MemoryLedger`` (here), ``producer.ledger_sqlite`` and
``producer.ledger_firestore`` implement it; ``tests/contract/test_payment_ledger.py`` runs
the same contract over all three.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

SUCCEEDED = "succeeded"
REQUIRES_ACTION = "requires_action"
REFUNDED = "refunded"
STATES = (SUCCEEDED, REQUIRES_ACTION, REFUNDED)

CANCELLED_BY_CUSTOMER = "cancelled_by_customer"    # the customer cancelled with the order's cancel token
CANCELLED_BY_OPERATOR = "cancelled_by_operator"    # trusted code (an operator's force, the shop's own)
PAID_AFTER_CANCEL = "paid_after_cancel"            # the payment succeeded after the order was cancelled
REFUND_REASONS = (CANCELLED_BY_CUSTOMER, CANCELLED_BY_OPERATOR, PAID_AFTER_CANCEL)
CANCEL_TOKEN_BYTES = 32                            # 256 random bits: guessing one is hopeless


def new_cancel_token() -> str:
    """A fresh cancel token (URL-safe text): shown to the customer once, stored only as its digest."""
    return secrets.token_urlsafe(CANCEL_TOKEN_BYTES)


def cancel_digest(token: str) -> str:
    """The SHA-256 hex digest the ledger keeps instead of the token: a read of the store
    (a backup, a leaked export) yields nothing that cancels an order."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(token: str, stored_digest: str | None) -> bool:
    """True when ``token`` is the one whose digest was stored; compared in constant time."""
    if not stored_digest:
        return False
    return hmac.compare_digest(cancel_digest(token), stored_digest)


@dataclass(frozen=True)
class Payment:
    """One order's payment; ``order_id`` is also the processor's idempotency key."""

    order_id: str
    processor: str                   # "local" | "stripe"
    payment_id: str                  # ch_… (local gateway) or pi_… (a Stripe PaymentIntent)
    amount: Decimal
    currency: str
    state: str                       # one of STATES
    created_at: datetime
    token: str = ""
    refund_id: str | None = None
    test: bool = False               # taken by the local gateway in a cloud test deployment
    refund_reason: str | None = None  # one of REFUND_REASONS once refunded


@runtime_checkable
class PaymentLedger(Protocol):
    """Payments by order id. Methods raise ``DependencyUnavailable`` when the store is unreachable."""

    def record_payment(self, payment: Payment) -> Payment:
        """Create the record unless one exists for ``payment.order_id``; return the stored record.

        Atomic: of two concurrent calls for one order, both get the first writer's record.
        """
        ...

    def get_payment(self, order_id: str) -> Payment | None:
        """The order's payment, or ``None``."""
        ...

    def set_state(self, order_id: str, state: str, refund_id: str | None = None,
                  refund_reason: str | None = None) -> Payment | None:
        """Change the state (and the refund id and reason when given); the new record, ``None``
        if there is none."""
        ...

    def list_payments(self) -> list[Payment]:
        """Every record, oldest first (for tests and inspection, not for the request path)."""
        ...

    def set_cancel_digest(self, order_id: str, digest: str, issued_at: datetime) -> None:
        """Keep ``digest`` (``cancel_digest`` of the order's cancel token), replacing any earlier
        one: the token handed out last is the one that cancels."""
        ...

    def get_cancel_digest(self, order_id: str) -> str | None:
        """The digest kept for the order, or ``None`` (no token was issued for it)."""
        ...


class MemoryLedger:
    """A ``PaymentLedger`` in a dict: lives as long as the object (tests, embedding)."""

    def __init__(self) -> None:
        self._payments: dict[str, Payment] = {}
        self._digests: dict[str, str] = {}
        self._lock = threading.Lock()

    def record_payment(self, payment: Payment) -> Payment:
        """See ``PaymentLedger.record_payment``."""
        with self._lock:
            return self._payments.setdefault(payment.order_id, payment)

    def get_payment(self, order_id: str) -> Payment | None:
        """See ``PaymentLedger.get_payment``."""
        with self._lock:
            return self._payments.get(order_id)

    def set_state(self, order_id: str, state: str, refund_id: str | None = None,
                  refund_reason: str | None = None) -> Payment | None:
        """See ``PaymentLedger.set_state``."""
        with self._lock:
            current = self._payments.get(order_id)
            if current is None:
                return None
            self._payments[order_id] = replace(current, state=state, refund_id=refund_id or current.refund_id,
                                               refund_reason=refund_reason or current.refund_reason)
            return self._payments[order_id]

    def list_payments(self) -> list[Payment]:
        """See ``PaymentLedger.list_payments``."""
        with self._lock:
            return sorted(self._payments.values(), key=lambda p: (p.created_at, p.order_id))

    def set_cancel_digest(self, order_id: str, digest: str, issued_at: datetime) -> None:
        """See ``PaymentLedger.set_cancel_digest``."""
        with self._lock:
            self._digests[order_id] = digest

    def get_cancel_digest(self, order_id: str) -> str | None:
        """See ``PaymentLedger.get_cancel_digest``."""
        with self._lock:
            return self._digests.get(order_id)
