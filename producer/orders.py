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

Every 201/202 answer, and a 402 ``requires_action``, carries a fresh ``cancel_token`` while
customer cancellation is on (``ORDERTASKS_CUSTOMER_CANCEL``): the ledger keeps only its
SHA-256 digest, and the answer stored for an ``Idempotency-Key`` never holds it, so a replay
hands out a new token (the earlier one stops working). Cancelling (``customer_cancel`` with
that token, ``cancel`` for trusted code) refunds a captured payment once and records why in
the ledger; it is refused with 409 ``already_fulfilled`` once a fulfilment kind (a webhook
kind, such as the warehouse notification) is done or running, unless trusted code forces it.
A payment that succeeds for an order cancelled while it awaited payment is refunded
(``complete_payment``): nobody is charged for an order that will never ship.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ordertasks.handlers.config import Catalog
from ordertasks.handlers.contract import OrderSnapshot, Totals, minor_units
from ordertasks.handlers.errors import DependencyUnavailable
from ordertasks.handlers.ports import Clock, EffectState, OrderRecord, OrderStatus, Stores, TaskState
from ordertasks.handlers.registry import KindRegistry
from ordertasks.producer.api_errors import ApiError
from ordertasks.producer.cart import PricedCart, price_cart
from ordertasks.producer.checkout_request import CheckoutRequest
from ordertasks.producer.enqueue import Enqueuer
from ordertasks.producer.library import OrderTasks, TaskResult
from ordertasks.producer.ledger import (CANCELLED_BY_CUSTOMER, CANCELLED_BY_OPERATOR, PAID_AFTER_CANCEL, REFUNDED,
                                        REQUIRES_ACTION, SUCCEEDED, MemoryLedger, Payment, PaymentLedger,
                                        cancel_digest, new_cancel_token, token_matches)
from ordertasks.producer.payments import PaymentDeclined, PaymentGateway, PaymentRequiresAction, PaymentUnavailable
from ordertasks.producer.pricebook import PriceBook
from ordertasks.producer.pricing import UnsupportedCountry, compute_totals, tax_rate
from ordertasks.producer.stripe_webhook import IntentSucceeded

log = logging.getLogger("ordertasks.producer.checkout")

RESUMABLE_STATUS = 503
TOKEN_ANSWERS = (201, 202)          # answers that hand the customer a cancel token (and 402 requires_action)


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


def fulfilment_kinds(catalog: Catalog) -> list[str]:
    """The kinds that hand an order to a system outside ordertasks: every webhook kind (the
    warehouse notification, and any ``[kinds.NAME.webhook]``). Once one of them is done or
    running, goods may be on their way, so the order is no longer a customer's to cancel."""
    return sorted(KindRegistry.from_catalog(catalog).webhooks)


def _captured(record: OrderRecord) -> bool:
    """True when the order's money was taken (it was paid, and maybe cancelled since)."""
    return bool(record.charge_id) and record.status in (OrderStatus.PAID, OrderStatus.CANCELLED)


def _requires_action(status: int, body: dict[str, Any]) -> bool:
    error = body.get("error")
    return status == 402 and isinstance(error, dict) and error.get("code") == "requires_action"


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
                 ledger: PaymentLedger | None = None, test_payments: bool = False,
                 customer_cancel: bool = True, processor: str = "local") -> None:
        self.stores = stores
        self.store = stores.orders
        self.price_book = price_book
        self.ledger = ledger or MemoryLedger()
        self.test_payments = test_payments
        self.customers_may_cancel = customer_cancel
        self.processor = processor          # how refunds of charges the ledger never saw are labelled
        self.fulfilment_kinds = fulfilment_kinds(enqueuer.catalog)
        self.gateway = gateway
        self.enqueuer = enqueuer
        self.clock = clock
        self.stale_after = stale_after
        # The checkout is one client of the library API: scheduling and status go through it.
        self.tasks = OrderTasks(enqueuer.settings, stores, enqueuer, clock)

    # --- placing an order -------------------------------------------------------------

    def checkout(self, request: CheckoutRequest, fingerprint: str, idempotency_key: str | None) -> CheckoutAnswer:
        """Run the flow once per order; with a key, at most once per key. The order id is always
        ours (``new_order_id``); the answer carries a new cancel token (module docstring)."""
        try:
            answer = self._checkout(request, fingerprint, idempotency_key)
        except ApiError as err:
            if _requires_action(err.status, err.body()):
                self._hand_token(err.extra)     # after the answer was stored: it never holds the token
            raise
        return self._with_cancel_token(answer)

    def _checkout(self, request: CheckoutRequest, fingerprint: str, idempotency_key: str | None) -> CheckoutAnswer:
        order_id = new_order_id()
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

    def _with_cancel_token(self, answer: CheckoutAnswer) -> CheckoutAnswer:
        """``answer`` with a cancel token for its order, in a copy (the stored answer stays without)."""
        body = dict(answer.body)
        if answer.status_code in TOKEN_ANSWERS:
            self._hand_token(body)
        elif _requires_action(answer.status_code, body):
            body["error"] = dict(body["error"])
            self._hand_token(body["error"])
        return replace(answer, body=body)

    def _hand_token(self, part: dict[str, Any]) -> None:
        """Put a new cancel token for ``part["order_id"]`` into ``part``, unless customers may not cancel.

        The order is placed (and charged) by now: a store that cannot keep the digest costs the
        customer their self-service cancel, never the answer (a 503 here would invite a second order).
        """
        order_id = part.get("order_id")
        if not (self.customers_may_cancel and isinstance(order_id, str)):
            return
        try:
            part["cancel_token"] = self.issue_cancel_token(order_id)
        except DependencyUnavailable as exc:
            log.warning("no cancel token issued: the ledger is unavailable", extra={"order_id": order_id,
                                                                                    "error": str(exc)})

    def issue_cancel_token(self, order_id: str) -> str:
        """A new cancel token for the order; only its digest is kept, replacing any earlier one."""
        token = new_cancel_token()
        self.ledger.set_cancel_digest(order_id, cancel_digest(token), self.clock.now())
        return token

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
        """Complete an order awaiting payment from a verified Stripe event (see ``producer.stripe_webhook``);
        refund the payment instead if the order was cancelled while it waited."""
        record = self.store.get_order(paid.order_id) if paid.order_id else None
        if record is None:
            log.warning("stripe event for an unknown order", extra={"event": paid.event_id, "order_id": paid.order_id})
            return {"received": True, "result": "unknown_order"}
        if record.status == OrderStatus.CANCELLED:
            return self._paid_after_cancel(record, paid)
        if record.status == OrderStatus.PAID:
            return {"received": True, "result": "already_paid", "order_id": record.order_id}
        snapshot = OrderSnapshot.model_validate(record.snapshot)
        if not _pays_for(paid, snapshot.totals):
            log.error("stripe event amount differs from the order", extra={"event": paid.event_id,
                                                                           "order_id": record.order_id})
            return {"received": True, "result": "amount_mismatch", "order_id": record.order_id}
        # No stored record handed over: ``schedule`` reads the order again, so a cancel that
        # landed since this event arrived wins (a cancelled order is never marked paid).
        results = self._fulfil(record.order_id, snapshot, paid.payment_id, self.clock.now())
        current = self.store.get_order(record.order_id)
        if current is not None and current.status == OrderStatus.CANCELLED:
            return self._paid_after_cancel(current, paid)
        self.ledger.set_state(record.order_id, SUCCEEDED)
        log.info("order paid after authentication", extra={"order_id": record.order_id, "tasks": len(results)})
        return {"received": True, "result": "paid", "order_id": record.order_id,
                "scheduled": sum(1 for r in results if _scheduled(r))}

    def _paid_after_cancel(self, record: OrderRecord, paid: IntentSucceeded) -> dict[str, Any]:
        """A payment succeeded for a cancelled order: refund it once (Stripe redelivers events)."""
        answer = {"received": True, "order_id": record.order_id}
        if record.charge_id == paid.payment_id:
            # Paid before it was cancelled: that cancel already decided about the refund.
            return answer | {"result": "already_cancelled"}
        done = self._recorded_refund(record.order_id)
        if done is not None:
            return answer | {"result": "already_refunded", "refund_id": done}
        try:
            refund_id = self.gateway.refund(_refund_key(record.order_id), paid.payment_id)
        except PaymentUnavailable as exc:
            log.warning("refund unavailable for order %s: %s", record.order_id, exc)
            raise ApiError(503, "payment_unavailable", "the payment processor is unavailable; the refund of this "
                           "cancelled order's payment is retried when the event is delivered again",
                           headers={"Retry-After": "30"}) from exc
        except PaymentDeclined as exc:
            log.error("payment of a cancelled order could not be refunded: refund it by hand",
                      extra={"order_id": record.order_id, "payment_id": paid.payment_id, "error": str(exc)})
            return answer | {"result": "refund_refused"}
        self._record_refund(record, paid.payment_id, refund_id, PAID_AFTER_CANCEL)
        log.warning("payment of a cancelled order refunded", extra={"order_id": record.order_id, "refund": refund_id})
        return answer | {"result": "refunded", "refund_id": refund_id}

    def _order_record(self, order_id: str, request: CheckoutRequest, now: datetime) -> OrderRecord:
        country = request.shipping_address.country
        cart = price_cart(request.items, request.currency, self.price_book)
        snapshot = OrderSnapshot(
            placed_at=now, customer=request.contract_customer(), shipping_address=request.contract_address(),
            items=cart.items, totals=_totals(cart, request.currency, country), tax_rate=tax_rate(country),
            test=self.test_payments, metadata=request.metadata,
        )
        return OrderRecord(order_id=order_id, status=OrderStatus.CREATED, snapshot=snapshot.model_dump(mode="json"),
                           created_at=now)

    def _existing_order(self, order_id: str, resume: bool) -> OrderRecord:
        existing = self.store.get_order(order_id)
        if not resume or existing is None:
            raise ApiError(409, "order_exists", f"order {order_id!r} already exists; resend the first request "
                           "with its Idempotency-Key, or send the order again for a new id")
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

    def customer_cancel(self, order_id: str, token: str) -> dict[str, Any]:
        """``POST /api/orders/<id>/cancel`` for the customer holding the order's cancel token.

        404 for an unknown order, 403 when ``token`` is not the one issued for it (the order id
        alone proves nothing: it is in every link and email), then as ``cancel`` without force.
        """
        record = self._order_or_404(order_id)
        if not token_matches(token, self.ledger.get_cancel_digest(order_id)):
            log.warning("cancel refused: not this order's cancel token", extra={"order_id": order_id})
            raise ApiError(403, "invalid_cancel_token", f"this is not the cancel token of order {order_id}: send "
                           "the cancel_token the checkout returned with this order (orders placed without one "
                           "can only be cancelled by the shop)")
        return self._cancel(record, force=False, reason=CANCELLED_BY_CUSTOMER)

    def cancel(self, order_id: str, *, force: bool = False) -> dict[str, Any]:
        """Cancel as trusted code (an operator, the shop's own code): refund a captured payment
        once, then cancel every task (``OrderTasks.cancel``).

        Without ``force`` it refuses, as for a customer, an order already cancelled (409
        ``order_cancelled``) or handed to fulfilment (409 ``already_fulfilled``). ``force=True``
        cancels and refunds it anyway, and refunds a cancelled order that kept its money.
        """
        return self._cancel(self._order_or_404(order_id), force=force, reason=CANCELLED_BY_OPERATOR)

    def _cancel(self, record: OrderRecord, *, force: bool, reason: str) -> dict[str, Any]:
        """Fulfilment held back first, then the refund, then the tasks.

        Refund before cancelling the other tasks: if the processor is down the order stays
        as it is (only its fulfilment is held) and the caller retries (503); the refund is
        recorded in the ledger and keyed by the order, so a retry refunds at most once.
        """
        order_id = record.order_id
        if record.status == OrderStatus.CANCELLED and not force:
            raise ApiError(409, "order_cancelled", f"order {order_id} is already cancelled",
                           extra={"order": self.order_view(order_id)})
        if not force:
            self._hold_fulfilment(order_id)
        refund_id = self._refund(record, reason) if _captured(record) else None
        results = self.tasks.cancel(order_id)
        log.info("order cancelled", extra={"order_id": order_id, "refunded": refund_id is not None,
                                           "reason": reason, "forced": force})
        return {"order_id": order_id, "status": OrderStatus.CANCELLED, "refund_id": refund_id,
                "tasks": [{"kind": r.kind, "task_name": r.name, "state": r.state} for r in results]}

    def _hold_fulfilment(self, order_id: str) -> None:
        """Cancel the fulfilment kinds first, atomically with the handler's claim; 409
        ``already_fulfilled`` (nothing refunded) when one is done or running.

        Read first, so an order with one fulfilment kind done keeps its others; the cancel
        that follows closes the race with a delivery starting in between.
        """
        started = [kind for kind in self.fulfilment_kinds if self._started(order_id, kind)]
        if not started and self.fulfilment_kinds:
            held = self.tasks.cancel(order_id, kinds=self.fulfilment_kinds)
            started = [r.kind for r in held if r.state != TaskState.CANCELLED]
        if started:
            raise ApiError(409, "already_fulfilled", f"order {order_id} has been handed to fulfilment "
                           f"({', '.join(started)} done or under way), so it can no longer be cancelled and "
                           "refunded here; contact the shop, which can still cancel it", extra={"fulfilment": started})

    def _started(self, order_id: str, kind: str) -> bool:
        effect = self.tasks.effects.get_effect(order_id, kind)
        # Any attempt counts, also one that failed (retrying, failed): a timed-out call may have reached the far end.
        return effect is not None and effect.state in (EffectState.DONE, EffectState.IN_PROGRESS, EffectState.RETRYING,
                                                       EffectState.FAILED)

    def _refund(self, record: OrderRecord, reason: str) -> str:
        """Refund the order's charge once and record why; a refund the ledger holds is answered from it."""
        done = self._recorded_refund(record.order_id)
        if done is not None:
            return done
        charge_id = record.charge_id or ""
        try:
            refund_id = self.gateway.refund(_refund_key(record.order_id), charge_id)
        except PaymentUnavailable as exc:
            log.warning("refund unavailable for order %s: %s", record.order_id, exc)
            raise ApiError(503, "payment_unavailable", "the payment processor is unavailable, so the order was "
                           "not cancelled (only its hand-over to fulfilment is held back); retry the cancel",
                           headers={"Retry-After": "5"}) from exc
        except PaymentDeclined as exc:
            raise ApiError(409, "refund_refused", f"the payment could not be refunded ({exc}); the order was "
                           "not cancelled: contact the shop") from exc
        self._record_refund(record, charge_id, refund_id, reason)
        return refund_id

    def _recorded_refund(self, order_id: str) -> str | None:
        payment = self.ledger.get_payment(order_id)
        return payment.refund_id if payment is not None and payment.state == REFUNDED else None

    def _record_refund(self, record: OrderRecord, payment_id: str, refund_id: str, reason: str) -> None:
        """The refund and its reason in the ledger, creating the payment's record if it had none
        (a Stripe payment that succeeded at once is not recorded until it is refunded)."""
        totals = OrderSnapshot.model_validate(record.snapshot).totals
        self.ledger.record_payment(Payment(record.order_id, self.processor, payment_id, totals.total, totals.currency,
                                           SUCCEEDED, self.clock.now(), test=self.test_payments))
        self.ledger.set_state(record.order_id, REFUNDED, refund_id, reason)

    def _order_or_404(self, order_id: str) -> OrderRecord:
        record = self.store.get_order(order_id)
        if record is None:
            raise ApiError(404, "order_not_found", f"no order {order_id!r}; check the id the checkout returned")
        return record

    # --- showing an order ---------------------------------------------------------------

    def order_view(self, order_id: str) -> dict[str, Any]:
        """The order (no personal data: the endpoint is public), each task's state and, for a
        cancelled order whose money went back, the refund and why."""
        record = self._order_or_404(order_id)
        snapshot = record.snapshot
        view = {
            "order_id": record.order_id, "status": self._status(record), "test": bool(snapshot.get("test")),
            "created_at": record.created_at.isoformat(),
            "paid_at": record.paid_at.isoformat() if record.paid_at else None,
            "items": snapshot.get("items", []), "totals": snapshot.get("totals"),
            "tasks": [self.tasks.task_view(e, record.status) for e in self.store.outbox_for(order_id)],
        }
        refund = self._refund_view(record)
        return view | {"refund": refund} if refund else view

    def _refund_view(self, record: OrderRecord) -> dict[str, Any] | None:
        """Only a cancelled order can have been refunded: the others cost no ledger read."""
        payment = self.ledger.get_payment(record.order_id) if record.status == OrderStatus.CANCELLED else None
        if payment is None or payment.state != REFUNDED:
            return None
        return {"refund_id": payment.refund_id, "reason": payment.refund_reason}

    def _status(self, record: OrderRecord) -> str:
        """The stored status, or ``awaiting_payment`` while a payment waits for the customer."""
        if record.status == OrderStatus.CREATED:
            payment = self.ledger.get_payment(record.order_id)
            if payment is not None and payment.state == REQUIRES_ACTION:
                return "awaiting_payment"
        return record.status


def _refund_key(order_id: str) -> str:
    """The idempotency key of an order's refund: one refund per order, whoever asks for it."""
    return f"{order_id}:refund"


def _scheduled(result: TaskResult) -> bool:
    return result.state in ("created", "exists")
