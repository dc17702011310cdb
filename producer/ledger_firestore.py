"""The payment ledger in Firestore: documents ``payments/{order_id}``.

``record_payment`` is ``create()`` (fails with Conflict when the document exists, the same
claim primitive as the idempotency records), then a read of whichever record won. Amounts
are decimal strings: Firestore numbers are doubles.

Cancel-token digests are documents ``cancel_tokens/{order_id}`` (``digest``, ``issued_at``),
written with ``set()`` so the token handed out last is the one that counts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from google.api_core import exceptions as gexc

from ordertasks.handlers.errors import DependencyUnavailable
from ordertasks.producer.ledger import Payment

T = TypeVar("T")


class FirestoreLedger:
    """``PaymentLedger`` over collection ``{prefix}payments`` of a Firestore client."""

    def __init__(self, client: Any, prefix: str = "", timeout: float = 10.0) -> None:
        self.payments = client.collection(prefix + "payments")
        self.cancel_tokens = client.collection(prefix + "cancel_tokens")
        self._timeout = timeout

    def record_payment(self, payment: Payment) -> Payment:
        """See ``PaymentLedger.record_payment``."""
        ref = self.payments.document(payment.order_id)
        try:
            _call(lambda: ref.create(_doc(payment), timeout=self._timeout))
        except gexc.Conflict:
            pass   # another request recorded this order first: its record is the answer
        return self.get_payment(payment.order_id)  # type: ignore[return-value]

    def get_payment(self, order_id: str) -> Payment | None:
        """See ``PaymentLedger.get_payment``."""
        snap = _call(lambda: self.payments.document(order_id).get(timeout=self._timeout))
        return _payment(snap.id, snap.to_dict()) if snap.exists else None

    def set_state(self, order_id: str, state: str, refund_id: str | None = None,
                  refund_reason: str | None = None) -> Payment | None:
        """See ``PaymentLedger.set_state``."""
        changes: dict[str, Any] = ({"state": state} | ({"refund_id": refund_id} if refund_id else {})
                                   | ({"refund_reason": refund_reason} if refund_reason else {}))
        try:
            _call(lambda: self.payments.document(order_id).update(changes, timeout=self._timeout))
        except gexc.NotFound:
            return None
        return self.get_payment(order_id)

    def list_payments(self) -> list[Payment]:
        """See ``PaymentLedger.list_payments``."""
        snaps = _call(lambda: list(self.payments.stream(timeout=self._timeout)))
        return sorted((_payment(s.id, s.to_dict()) for s in snaps), key=lambda p: (p.created_at, p.order_id))

    def set_cancel_digest(self, order_id: str, digest: str, issued_at: datetime) -> None:
        """See ``PaymentLedger.set_cancel_digest``."""
        doc = {"digest": digest, "issued_at": issued_at}
        _call(lambda: self.cancel_tokens.document(order_id).set(doc, timeout=self._timeout))

    def get_cancel_digest(self, order_id: str) -> str | None:
        """See ``PaymentLedger.get_cancel_digest``."""
        snap = _call(lambda: self.cancel_tokens.document(order_id).get(timeout=self._timeout))
        return str(snap.to_dict()["digest"]) if snap.exists else None


def _call(action: Callable[[], T]) -> T:
    try:
        return action()
    except (gexc.Conflict, gexc.NotFound):
        raise
    except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
        raise DependencyUnavailable(f"Firestore payment ledger unavailable ({type(exc).__name__}: {exc})") from exc


def _doc(p: Payment) -> dict[str, Any]:
    return {"processor": p.processor, "payment_id": p.payment_id, "amount": str(p.amount), "currency": p.currency,
            "state": p.state, "created_at": p.created_at, "token": p.token, "refund_id": p.refund_id, "test": p.test,
            "refund_reason": p.refund_reason}


def _payment(order_id: str, doc: dict[str, Any]) -> Payment:
    c = doc["created_at"].astimezone(UTC)   # Firestore's timestamp subclass → a plain aware datetime
    created = datetime(c.year, c.month, c.day, c.hour, c.minute, c.second, c.microsecond, tzinfo=UTC)
    return Payment(order_id, doc["processor"], doc["payment_id"], Decimal(doc["amount"]), doc["currency"], doc["state"],
                   created, doc.get("token", ""), doc.get("refund_id"), bool(doc.get("test", False)),
                   doc.get("refund_reason"))
