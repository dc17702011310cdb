"""The checkout API: a Flask app factory over the order flow in ``producer.orders``.

Endpoints (described in full at ``GET /openapi.json``):

- ``POST /api/checkout``: validate, charge, store, enqueue (201; 202 when tasks are pending).
- ``POST /api/webhooks/stripe``: Stripe events (signature verified); completes 3-D Secure orders.
- ``GET /api/orders/<order_id>``: the order and each task's state.
- ``POST /api/orders/<order_id>/cancel``: the customer's cancel, with the order's cancel token
  as ``Authorization: Bearer <cancel_token>`` (the checkout returned it); operators cancel
  through trusted code (``Checkout.cancel``, the console, the library), never through here.
- ``GET /healthz``, ``GET /openapi.json``.
- ``POST /internal/reconcile``: for a Cloud Scheduler job; OIDC-verified.

Every answer that is not a success is JSON ``{"error": {"code", "message", "fields"}}``;
error handlers cover HTTP errors, store outages, auth failures and, as a last resort,
anything unexpected (a logged JSON 500 that bad input must never reach).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict
from typing import Any

from flask import Flask, Response, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ordertasks.handlers.cloud_readiness import require_cloud_ready
from ordertasks.handlers.contract import valid_order_id
from ordertasks.handlers.registry import KindRegistry
from ordertasks.handlers.errors import AuthError, ConfigurationError, DependencyUnavailable, OrderTasksError
from ordertasks.handlers.oidc import TokenVerifier
from ordertasks.handlers.ports import Clock, Stores
from ordertasks.handlers.config import Settings
from ordertasks.handlers.tracing import Tracing, tracing_for
from ordertasks.producer import wiring
from ordertasks.producer.api_errors import ApiError, error_body
from ordertasks.producer.checkout_request import CheckoutRequest, field_errors
from ordertasks.producer.enqueue import Enqueuer
from ordertasks.producer.openapi import openapi_document
from ordertasks.producer.orders import Checkout, CheckoutAnswer, request_hash
from ordertasks.producer.ledger import PaymentLedger
from ordertasks.producer.payments import PaymentGateway
from ordertasks.producer.pricebook import PriceBook
from ordertasks.producer.stripe_webhook import intent_succeeded, verified_event
from ordertasks.producer.tax_rules import TaxTableError, default_table
from ordertasks.producer.triage import triage_for

log = logging.getLogger("ordertasks.producer.checkout")

MAX_BODY_BYTES = 64 * 1024
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
BEARER = re.compile(r"^Bearer +([A-Za-z0-9_-]{1,200})$", re.IGNORECASE)
CANCEL_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="order cancel"'}


def create_app(settings: Settings, *, store: Stores | None = None, enqueuer: Enqueuer | None = None,
               gateway: PaymentGateway | None = None, verifier: TokenVerifier | None = None,
               clock: Clock | None = None, price_book: PriceBook | None = None,
               ledger: PaymentLedger | None = None) -> Flask:
    """The checkout app; dependencies not given are built by ``producer.wiring``.

    ``store``: the store ports (``handlers.ports.Stores``; every backend's store object, e.g.
    ``SqliteStore(path)``, is one): orders, and the effects and failed log an order's status reads.

    In the cloud it refuses to start while a setting is unset or points at loopback.
    """
    require_cloud_ready(settings, "checkout")
    _check_tax_table()
    tracing_for(settings, "ordertasks-checkout")     # names this process's traces before anything else starts them
    store = store or wiring.build_stores(settings)
    enqueuer = enqueuer or wiring.enqueuer(settings)
    _check_catalog(enqueuer)
    ledger = ledger or wiring.payment_ledger(settings)
    checkout = Checkout(store, gateway or wiring.payment_gateway(settings, ledger), enqueuer,
                        clock or wiring.clock(), price_book=price_book or wiring.price_book(settings),
                        ledger=ledger, test_payments=settings.test_payments,
                        customer_cancel=settings.customer_cancel, processor=settings.payment_processor.value)
    if settings.oidc.verify and verifier is None:
        verifier = wiring.reconcile_verifier(settings)
    app = Flask("ordertasks.checkout")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    # Werkzeug would answer "//" with an HTML 308 redirect, outside our JSON error contract.
    app.url_map.merge_slashes = False
    app.extensions["ordertasks"] = {"checkout": checkout, "settings": settings}
    _register_routes(app, checkout, settings, verifier, enqueuer.tracing)
    _register_stripe_webhook(app, checkout, settings)
    _register_error_handlers(app)
    return app


def _check_catalog(enqueuer: Enqueuer) -> None:
    """Refuse to start on a catalog whose kinds the handler could not serve (same check, same message)."""
    KindRegistry.from_catalog(enqueuer.catalog)


def _check_tax_table() -> None:
    try:
        default_table()
    except TaxTableError as exc:
        raise ConfigurationError(f"{exc}; the checkout cannot price orders without it") from exc


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer (UTF-8, compact)."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str)
    return Response(text, status=status, headers=headers, mimetype="application/json")


def _register_routes(app: Flask, checkout: Checkout, settings: Settings, verifier: TokenVerifier | None,
                     tracing: Tracing) -> None:
    @app.post("/api/checkout")
    def post_checkout() -> Response:
        # The order's trace: continues the shop frontend's traceparent, if it sent one.
        with tracing.incoming("POST /api/checkout", request.headers, http__request__method="POST",
                              http__route="/api/checkout") as span:
            key = _idempotency_key()
            raw = _json_body()
            answer = checkout.checkout(_validated(raw), request_hash(raw), key)
            span.set(order_id=answer.body.get("order_id"), http__response__status_code=answer.status_code)
            return _checkout_response(answer)

    @app.get("/api/orders/<order_id>")
    def get_order(order_id: str) -> Response:
        if not valid_order_id(order_id):
            # Never hand a store an id it may reject with its own (internal) error text.
            raise ApiError(404, "order_not_found", "no such order: order ids are 1-64 of A-Z a-z 0-9 _ -, "
                           "starting with a letter or digit; check the id the checkout returned")
        return json_response(checkout.order_view(order_id))

    @app.post("/api/orders/<order_id>/cancel")
    def cancel_order(order_id: str) -> Response:
        if not valid_order_id(order_id):
            raise ApiError(404, "order_not_found", "no such order: check the id the checkout returned")
        if not settings.customer_cancel:
            raise ApiError(403, "customer_cancel_disabled", "this shop does not take cancellations through the "
                           "API (ORDERTASKS_CUSTOMER_CANCEL is off): ask the shop to cancel the order")
        return json_response(checkout.customer_cancel(order_id, _cancel_token()))

    @app.get("/healthz")
    def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/openapi.json")
    def openapi() -> Response:
        return json_response(openapi_document())

    def verify_internal(action: str) -> None:
        if settings.oidc.verify and verifier is not None:
            caller = verifier.verify(request.headers.get("Authorization"))
            log.info("%s requested", action, extra={"caller": caller.email})

    @app.post("/internal/reconcile")
    def post_reconcile() -> Response:
        verify_internal("reconcile")
        return json_response(checkout.tasks.reconcile(grace_seconds=_grace_seconds()).as_dict())

    @app.post("/internal/sweep")
    def post_sweep() -> Response:
        verify_internal("sweep")
        results = triage_for(checkout.stores.failed, checkout.enqueuer).sweep()
        return json_response({"swept": len(results), "results": [asdict(r) for r in results]})


def _register_stripe_webhook(app: Flask, checkout: Checkout, settings: Settings) -> None:
    @app.post("/api/webhooks/stripe")
    def stripe_webhook() -> Response:
        if not settings.payment.stripe_webhook_secret:
            raise ApiError(404, "webhook_not_configured", "no Stripe webhook secret is configured "
                           "(ORDERTASKS_STRIPE_WEBHOOK_SECRET)")
        event = verified_event(_body(), request.headers.get("Stripe-Signature"),
                               settings.payment.stripe_webhook_secret)
        paid = intent_succeeded(event)
        if paid is None:
            return json_response({"received": True, "result": "ignored", "type": event.type})
        return json_response(checkout.complete_payment(paid))


def _checkout_response(answer: CheckoutAnswer) -> Response:
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    order_id = answer.body.get("order_id")
    if answer.status_code in (201, 202) and order_id:
        headers["Location"] = f"/api/orders/{order_id}"
    return json_response(answer.body, answer.status_code, headers)


def _cancel_token() -> str:
    """The bearer token of a cancel request; 401 saying how to send it when it is missing."""
    match = BEARER.match(request.headers.get("Authorization", "").strip())
    if match is None:
        raise ApiError(401, "cancel_token_required", "send the cancel_token the checkout returned with this "
                       "order as the header 'Authorization: Bearer <cancel_token>'", headers=CANCEL_CHALLENGE)
    return match.group(1)


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.match(key):
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 printable ASCII characters "
                       "without spaces, e.g. a UUID", [{"field": "Idempotency-Key", "message": "invalid"}])
    return key


def _json_body() -> Any:
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type",
                       f"send the order as JSON with 'Content-Type: application/json' (got {request.mimetype or 'none'!r})")
    data = _body()
    try:
        return json.loads(data, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except DuplicateKey as exc:
        raise ApiError(400, "duplicate_key", f"the body repeats the key {exc.key!r} in one object; send each key "
                       "once", [{"field": exc.key, "message": "duplicate key"}]) from exc
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {str(exc)[:200]}") from exc


def _body() -> bytes:
    """The request body; 413 past ``MAX_BODY_BYTES``, with or without a ``Content-Length``.

    Flask refuses a ``Content-Length`` over ``MAX_CONTENT_LENGTH`` but cuts a chunked body at it
    and hands over the first part, so a proxy and we could read different orders: one byte past
    the limit is a 413 too.
    """
    data = request.get_data(cache=False)  # 413 here when Content-Length is over the limit
    chunked = request.content_length is None
    if chunked and len(data) >= MAX_BODY_BYTES and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


class DuplicateKey(OrderTasksError, ValueError):
    """A JSON object names the same key twice (which one wins differs between parsers)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise DuplicateKey(key)
        obj[key] = value
    return obj


def _validated(raw: Any) -> CheckoutRequest:
    if not isinstance(raw, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object describing the order")
    try:
        return CheckoutRequest.model_validate(raw)
    except ValidationError as exc:
        fields = field_errors(exc)
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:3])
        raise ApiError(400, "invalid_request", f"the order has {len(fields)} invalid field(s): {summary}",
                       fields) from exc


def _grace_seconds() -> float:
    raw = request.args.get("grace_seconds")
    if raw is None:
        return 60.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86400:
        raise ApiError(400, "invalid_grace_seconds", "grace_seconds must be a number of seconds from 0 to 86400",
                       [{"field": "grace_seconds", "message": "must be between 0 and 86400"}])
    return value


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(err: ApiError) -> Response:
        return json_response(err.body(), err.status, err.headers)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response:
        status = err.code or 500
        code = (err.name or "error").lower().replace(" ", "_")
        headers = {k: v for k, v in err.get_headers() if k.lower() == "allow"}
        return json_response(error_body(code, _http_message(status, err)), status, headers)

    @app.errorhandler(AuthError)
    def auth_error(err: AuthError) -> Response:
        code = "forbidden" if err.status == 403 else "unauthenticated"
        return json_response(error_body(code, str(err)), err.status, {"WWW-Authenticate": "Bearer"})

    @app.errorhandler(DependencyUnavailable)
    def unavailable(err: DependencyUnavailable) -> Response:
        # The detail (backend names, roles, paths) is for operators: log it, never answer it.
        log.warning("dependency unavailable: %s", err, extra={"error": str(err)})
        return json_response(error_body("unavailable", "a service the checkout depends on is unavailable; retry "
                                        "shortly (with the same Idempotency-Key)"), 503, {"Retry-After": "5"})

    @app.errorhandler(Exception)
    def internal(err: Exception) -> Response:
        log.exception("unhandled error in the checkout API")
        return json_response(error_body("internal_error", "internal error; it has been logged"), 500)


def _http_message(status: int, err: HTTPException) -> str:
    if status == 413:
        return f"the body is over {MAX_BODY_BYTES // 1024} KB; an order is far smaller"
    if status == 404:
        return "no such resource; see /openapi.json for the endpoints"
    return err.description or err.name
