"""The checkout flow, free of HTTP: store the order, charge, write the outbox, enqueue.

Order of steps and why:

1. Price the cart from the price book (``producer.cart``: never from the request), then
   ``create_order`` (status ``created``) before charging, so a charge never exists without
   its order.
2. ``charge`` with the order id as the idempotency key: any re-run of the flow for the same
   order charges at most once. A card that needs 3-D Secure answers 402 ``requires_action``
   with the client secret; the order stays ``created`` (shown ``awaiting_payment``, the
   payment ledger says why) until Stripe's ``payment_intent.succeeded`` webhook runs steps
   3 and 4 through ``complete_payment``.
3. ``mark_paid`` writes the outbox (one pending entry per task) in the same transaction, so
   a paid order always knows which tasks it is owed.
4. Enqueue all tasks concurrently; each one Cloud Tasks holds is marked ``scheduled``. If
   some fail (Cloud Tasks unreachable) the answer is 202 and ``reconcile`` finishes the job.

An ``Idempotency-Key`` is reserved before step 1 and its answer stored after step 4. A
second request with the key gets the stored answer; while the first is still running it
gets 409. Two answers are not final: a 503 (payment processor down, store down) and a
reservation left without answer for ``stale_after`` seconds (a crashed server). The next
request with that key re-runs the flow for the *same* order id, which is safe because every
step above is idempotent on the order id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ordertasks.handlers.contract import OrderSnapshot, Totals, minor_units
from ordertasks.handlers.errors import DependencyUnavailable
from ordertasks.handlers.ports import Clock, OrderRecord, OrderStatus, Stores
from ordertasks.producer.api_errors import ApiError
from ordertasks.producer.cart import PricedCart, price_cart
from ordertasks.producer.checkout_request import CheckoutRequest
from ordertasks.producer.enqueue import Enqueuer
from ordertasks.producer.library import OrderTasks, TaskResult
from ordertasks.producer.ledger import REQUIRES_ACTION, SUCCEEDED, MemoryLedger, Payment, PaymentLedger
from ordertasks.producer.payments import PaymentDeclined, PaymentGateway, PaymentRequiresAction, PaymentUnavailable
from ordertasks.producer.pricebook import PriceBook
from ordertasks.producer.pricing import UnsupportedCountry, compute_totals, tax_rate
from ordertasks.producer.stripe_webhook import IntentSucceeded

log = logging.getLogger("ordertasks.producer.checkout")

RESUMABLE_STATUS = 503


def new_order_id() -> str:
    """``ord_`` + 20 lowercase base32 characters (100 random bits): unguessable, valid id."""
    return "ord_" + base64.b32encode(secrets.token_bytes(15)).decode().lower()[:20]


def request_hash(raw: Any) -> str:
    """Fingerprint of a parsed JSON body, independent of key order and whitespace."""
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _totals(cart: PricedCart, currency: str, country: str) -> Totals:
    """The cart's totals; a country without a tax rule is 400, never 0 % tax."""
    try:
        return compute_totals(cart.items, currency, country, tax_categories=cart.tax_categories)
    except UnsupportedCountry as exc:
        raise ApiError(400, "unsupported_country", str(exc),
                       [{"field": "shipping_address.country", "message": f"{country} is not a country we ship to"}]
                       ) from exc


def _pays_for(paid: IntentSucceeded, totals: Totals) -> bool:
    """True when the intent is for exactly the order's total, in its currency."""
    return (paid.amount_minor, paid.currency) == (minor_units(totals.total, totals.currency), totals.currency)


@dataclass(frozen=True)
class CheckoutAnswer:
    """The status and JSON body of a checkout; ``replayed`` when it is a stored answer."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False


class Checkout:
    """Places orders (see the module docstring) and shows them with their tasks' states."""

    def __init__(self, stores: Stores, gateway: PaymentGateway, enqueuer: Enqueuer, clock: Clock,
                 stale_after: timedelta = timedelta(seconds=120), *, price_book: PriceBook,
                 ledger: PaymentLedger | None = None, test_payments: bool = False) -> None:
        self.stores = stores
        self.store = stores.orders
        self.price_book = price_book
        self.ledger = ledger or MemoryLedger()
        self.test_payments = test_payments
        self.gateway = gateway
        self.enqueuer = enqueuer
        self.clock = clock
        self.stale_after = stale_after
        # The checkout is one client of the library API: scheduling and status go through it.
        self.tasks = OrderTasks(enqueuer.settings, stores, enqueuer, clock)

    # --- placing an order -------------------------------------------------------------

    def checkout(self, request: CheckoutRequest, fingerprint: str, idempotency_key: str | None) -> CheckoutAnswer:
        """Run the flow once per order; with a key, at most once per key."""
        order_id = request.order_id or new_order_id()
        if idempotency_key is None:
            return self._place(order_id, request, resume=False)
        prior = self.store.reserve_checkout(idempotency_key, fingerprint, order_id, self.clock.now())
        if prior is None:
            return self._place_keyed(idempotency_key, order_id, request, resume=False)
        if prior.request_hash != fingerprint:
            raise ApiError(422, "idempotency_key_reused",
                           "this Idempotency-Key was used with a different request body; "
                           "use a new key for a new order")
        if prior.status_code is not None and prior.status_code != RESUMABLE_STATUS:
            return CheckoutAnswer(prior.status_code, prior.response or {}, replayed=True)
        if prior.status_code is None and self.clock.now() - prior.created_at < self.stale_after:
            raise ApiError(409, "request_in_progress",
                           "a request with this Idempotency-Key is still being processed; retry in a few seconds",
                           headers={"Retry-After": "2"})
        return self._place_keyed(idempotency_key, prior.order_id, request, resume=True)

    def _place_keyed(self, key: str, order_id: str, request: CheckoutRequest, resume: bool) -> CheckoutAnswer:
        try:
            answer = self._place(order_id, request, resume)
        except ApiError as err:
            self.store.finish_checkout(key, err.status, err.body())
            raise
        except DependencyUnavailable:
            self._try_finish(key, RESUMABLE_STATUS)
            raise
        self.store.finish_checkout(key, answer.status_code, answer.body)
        return answer

    def _try_finish(self, key: str, status: int) -> None:
        """Mark the key resumable so a retry re-runs at once instead of waiting out 409s."""
        try:
            self.store.finish_checkout(key, status, {"error": {"code": "unavailable"}})
        except DependencyUnavailable:
            log.warning("could not record the failed answer of an idempotent checkout", extra={"key": key})

    def _place(self, order_id: str, request: CheckoutRequest, resume: bool) -> CheckoutAnswer:
        now = self.clock.now()
        # A resumed request completes the order as first priced, even if the book changed since.
        record = self.store.get_order(order_id) if resume else None
        if record is None:
            record = self._order_record(order_id, request, now)
            if not self.store.create_order(record):
                record = self._existing_order(order_id, resume)
        snapshot = OrderSnapshot.model_validate(record.snapshot)
        charge_id = record.charge_id or self._charge(order_id, snapshot, request.payment_token)
        return self._answer(order_id, snapshot, self._fulfil(order_id, snapshot, charge_id, now, record))

    def _fulfil(self, order_id: str, snapshot: OrderSnapshot, charge_id: str, now: datetime,
                record: OrderRecord | None = None) -> list[TaskResult]:
        """Paid: ``OrderTasks.schedule`` writes the outbox with the status, then creates the tasks.

        ``record``: the order as this request stored or read it, handed over so ``schedule``
        does not store it a second time (a refused ``create()`` is still a write sent).
        """
        order = {"order_id": order_id, **snapshot.model_dump(mode="json")}
        return self.tasks.schedule(order, payment_id=charge_id, stored=record)

    def complete_payment(self, paid: IntentSucceeded) -> dict[str, Any]:
        """Complete an order awaiting payment from a verified Stripe event (see ``producer.stripe_webhook``)."""
        record = self.store.get_order(paid.order_id) if paid.order_id else None
        if record is None:
            log.warning("stripe event for an unknown order", extra={"event": paid.event_id, "order_id": paid.order_id})
            return {"received": True, "result": "unknown_order"}
        if record.status == OrderStatus.PAID:
            return {"received": True, "result": "already_paid", "order_id": record.order_id}
        snapshot = OrderSnapshot.model_validate(record.snapshot)
        if not _pays_for(paid, snapshot.totals):
            log.error("stripe event amount differs from the order", extra={"event": paid.event_id,
                                                                           "order_id": record.order_id})
            return {"received": True, "result": "amount_mismatch", "order_id": record.order_id}
        results = self._fulfil(record.order_id, snapshot, paid.payment_id, self.clock.now(), record)
        self.ledger.set_state(record.order_id, SUCCEEDED)
        log.info("order paid after authentication", extra={"order_id": record.order_id, "tasks": len(results)})
        return {"received": True, "result": "paid", "order_id": record.order_id,
                "scheduled": sum(1 for r in results if _scheduled(r))}

    def _order_record(self, order_id: str, request: CheckoutRequest, now: datetime) -> OrderRecord:
        country = request.shipping_address.country
        cart = price_cart(request.items, request.currency, self.price_book)
        snapshot = OrderSnapshot(
            placed_at=now, customer=request.contract_customer(), shipping_address=request.contract_address(),
            items=cart.items, totals=_totals(cart, request.currency, country), tax_rate=tax_rate(country),
            test=self.test_payments,
        )
        return OrderRecord(order_id=order_id, status=OrderStatus.CREATED, snapshot=snapshot.model_dump(mode="json"),
                           created_at=now)

    def _existing_order(self, order_id: str, resume: bool) -> OrderRecord:
        existing = self.store.get_order(order_id)
        if not resume or existing is None:
            raise ApiError(409, "order_exists", f"order {order_id!r} already exists; leave order_id out to get "
                           "a new one, or resend the first request with its Idempotency-Key")
        return existing

    def _charge(self, order_id: str, snapshot: OrderSnapshot, token: str) -> str:
        totals = snapshot.totals
        try:
            return self.gateway.charge(order_id, totals.total, totals.currency, token)
        except PaymentDeclined as exc:
            self.store.mark_payment_failed(order_id, self.clock.now())
            raise ApiError(402, "payment_declined", str(exc)) from exc
        except PaymentRequiresAction as exc:
            self._await_payment(order_id, totals, exc)
            raise ApiError(402, "requires_action", str(exc), extra={
                "client_secret": exc.client_secret, "payment_intent": exc.payment_id, "order_id": order_id}) from exc
        except PaymentUnavailable as exc:
            log.warning("payment unavailable for order %s: %s", order_id, exc)   # the detail stays here
            raise ApiError(503, "payment_unavailable", "the payment processor is unavailable; retry with the same "
                           "Idempotency-Key", headers={"Retry-After": "5"}) from exc

    def _await_payment(self, order_id: str, totals: Totals, action: PaymentRequiresAction) -> None:
        self.ledger.record_payment(Payment(order_id, "stripe", action.payment_id, totals.total, totals.currency,
                                           REQUIRES_ACTION, self.clock.now(), test=self.test_payments))

    def _answer(self, order_id: str, snapshot: OrderSnapshot, results: list[TaskResult]) -> CheckoutAnswer:
        plans = {p.kind: p for p in self.enqueuer.plan(order_id, snapshot, self.tasks.kinds)}
        tasks = [{"kind": r.kind, "task_name": r.name,
                  "schedule_time": plans[r.kind].schedule_time.isoformat(),
                  "state": "scheduled" if _scheduled(r) else r.state} for r in results]
        body: dict[str, Any] = {"order_id": order_id, "status": "paid",
                                "placed_at": snapshot.placed_at.isoformat(),
                                "totals": snapshot.totals.model_dump(mode="json"), "tasks": tasks}
        if snapshot.test:
            body["test"] = True
        pending = [r for r in results if not _scheduled(r)]
        if not pending:
            log.info("order placed", extra={"order_id": order_id, "tasks": len(results)})
            return CheckoutAnswer(201, body)
        body["message"] = (f"payment taken; {len(pending)} task(s) could not be scheduled yet and will be "
                           "enqueued by `ordertasks reconcile`")
        log.warning("order placed, tasks pending", extra={"order_id": order_id, "errors": [r.error for r in pending]})
        return CheckoutAnswer(202, body)

    # --- cancelling an order ------------------------------------------------------------

    def cancel(self, order_id: str) -> dict[str, Any]:
        """Refund a captured payment, then cancel every task (``OrderTasks.cancel``).

        Refund first: if the processor is down nothing is cancelled and the caller retries
        (503); the refund's idempotency key makes a retry refund at most once.
        """
        record = self.store.get_order(order_id)
        if record is None:
            raise ApiError(404, "order_not_found", f"no order {order_id!r}; check the id the checkout returned")
        if record.status == OrderStatus.CANCELLED:
            raise ApiError(409, "order_cancelled", f"order {order_id} is already cancelled",
                           extra={"order": self.order_view(order_id)})
        refund_id = self._refund(record) if record.status == OrderStatus.PAID and record.charge_id else None
        results = self.tasks.cancel(order_id)
        log.info("order cancelled", extra={"order_id": order_id, "refunded": refund_id is not None})
        return {"order_id": order_id, "status": OrderStatus.CANCELLED, "refund_id": refund_id,
                "tasks": [{"kind": r.kind, "task_name": r.name, "state": r.state} for r in results]}

    def _refund(self, record: OrderRecord) -> str:
        try:
            return self.gateway.refund(f"{record.order_id}:refund", record.charge_id or "")
        except PaymentUnavailable as exc:
            log.warning("refund unavailable for order %s: %s", record.order_id, exc)
            raise ApiError(503, "payment_unavailable", "the payment processor is unavailable; nothing was "
                           "cancelled, retry the cancel", headers={"Retry-After": "5"}) from exc
        except PaymentDeclined as exc:
            raise ApiError(409, "refund_refused", f"the payment could not be refunded ({exc}); nothing was "
                           "cancelled") from exc

    # --- showing an order ---------------------------------------------------------------

    def order_view(self, order_id: str) -> dict[str, Any]:
        """The order (no personal data: the endpoint is public) and each task's state."""
        record = self.store.get_order(order_id)
        if record is None:
            raise ApiError(404, "order_not_found", f"no order {order_id!r}; check the id the checkout returned")
        snapshot = record.snapshot
        return {
            "order_id": record.order_id, "status": self._status(record), "test": bool(snapshot.get("test")),
            "created_at": record.created_at.isoformat(),
            "paid_at": record.paid_at.isoformat() if record.paid_at else None,
            "items": snapshot.get("items", []), "totals": snapshot.get("totals"),
            "tasks": [self.tasks.task_view(e, record.status) for e in self.store.outbox_for(order_id)],
        }

    def _status(self, record: OrderRecord) -> str:
        """The stored status, or ``awaiting_payment`` while a payment waits for the customer."""
        if record.status == OrderStatus.CREATED:
            payment = self.ledger.get_payment(record.order_id)
            if payment is not None and payment.state == REQUIRES_ACTION:
                return "awaiting_payment"
        return record.status


def _scheduled(result: TaskResult) -> bool:
    return result.state in ("created", "exists")
