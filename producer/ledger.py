"""The payment ledger: one record per order of the money the checkout took or is waiting for.

It lives in the order store's database (table ``payments`` in the SQLite file, collection
``payments/{order_id}`` in Firestore), never in a side file on one instance's disk:

- the local gateway keeps its charges here, so "never charged twice" holds across restarts
  and, in a test deployment in the cloud, across instances;
- the checkout records a Stripe payment that needs the customer's action (3-D Secure) as
  ``requires_action``, which the order view shows as ``awaiting_payment`` until the Stripe
  webhook reports it ``succeeded``;
- a refund sets ``refunded`` with the refund's id.

``PaymentLedger`` is the port; ``MemoryLedger`` (here), ``producer.ledger_sqlite`` and
``producer.ledger_firestore`` implement it; ``tests/contract/test_payment_ledger.py`` runs
the same contract over all three.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

SUCCEEDED = "succeeded"
REQUIRES_ACTION = "requires_action"
REFUNDED = "refunded"
STATES = (SUCCEEDED, REQUIRES_ACTION, REFUNDED)


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

    def set_state(self, order_id: str, state: str, refund_id: str | None = None) -> Payment | None:
        """Change the state (and refund id when given); the new record, ``None`` if there is none."""
        ...

    def list_payments(self) -> list[Payment]:
        """Every record, oldest first (for tests and inspection, not for the request path)."""
        ...


class MemoryLedger:
    """A ``PaymentLedger`` in a dict: lives as long as the object (tests, embedding)."""

    def __init__(self) -> None:
        self._payments: dict[str, Payment] = {}
        self._lock = threading.Lock()

    def record_payment(self, payment: Payment) -> Payment:
        """See ``PaymentLedger.record_payment``."""
        with self._lock:
            return self._payments.setdefault(payment.order_id, payment)

    def get_payment(self, order_id: str) -> Payment | None:
        """See ``PaymentLedger.get_payment``."""
        with self._lock:
            return self._payments.get(order_id)

    def set_state(self, order_id: str, state: str, refund_id: str | None = None) -> Payment | None:
        """See ``PaymentLedger.set_state``."""
        with self._lock:
            current = self._payments.get(order_id)
            if current is None:
                return None
            self._payments[order_id] = replace(current, state=state, refund_id=refund_id or current.refund_id)
            return self._payments[order_id]

    def list_payments(self) -> list[Payment]:
        """See ``PaymentLedger.list_payments``."""
        with self._lock:
            return sorted(self._payments.values(), key=lambda p: (p.created_at, p.order_id))
