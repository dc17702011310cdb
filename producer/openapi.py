"""The OpenAPI 3.1 description of the checkout API, served at ``/openapi.json``.

Request schemas come from the pydantic models (JSON Schema 2020-12, which OpenAPI 3.1
uses as is); every status code an endpoint can answer is listed, so a fuzzer (schemathesis)
can hold the server to it.
"""

from __future__ import annotations

from typing import Any

from ordertasks.handlers.contract import ORDER_ID_RULE
from ordertasks.handlers.ports import OrderStatus, TaskState
from ordertasks.producer.checkout_request import CheckoutRequest
from ordertasks.producer.ledger import REFUND_REASONS

REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["code", "message", "fields"],
        "properties": {
            "code": {"type": "string"}, "message": {"type": "string"},
            "fields": {"type": "array", "items": {
                "type": "object", "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}},
            "client_secret": {"type": "string", "description": "with code requires_action: for Stripe.js"},
            "payment_intent": {"type": "string"}, "order_id": {"type": "string"},
            "cancel_token": {"type": "string", "description": "with code requires_action: the order's cancel "
                                                              "token, as in CheckoutResult"},
            "fulfilment": {"type": "array", "items": {"type": "string"},
                           "description": "with code already_fulfilled: the fulfilment kinds done or running"},
            "order": {"type": "object", "description": "with code order_cancelled: the order as GET shows it"},
            "prices": {"type": "array", "description": "with code price_changed: every line's current price",
                       "items": {"type": "object", "required": ["sku", "name", "unit_price", "currency"],
                                 "properties": {"sku": {"type": "string"}, "name": {"type": "string"},
                                                "unit_price": {"type": "string"}, "currency": {"type": "string"}}}},
        }}},
}
MONEY = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}
TOTALS_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["currency", "subtotal", "tax", "shipping", "total"],
    "properties": {"currency": {"type": "string"}, "subtotal": MONEY, "tax": MONEY, "shipping": MONEY,
                   "total": MONEY},
}
TASK_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["kind", "task_name", "schedule_time", "state"],
    "properties": {"kind": {"type": "string"}, "task_name": {"type": "string"},
                   "schedule_time": {"type": "string", "format": "date-time"},
                   "state": {"type": "string", "enum": [state.value for state in TaskState]},
                   "duplicates": {"type": "integer", "minimum": 0,
                                  "description": "deliveries absorbed after the effect was done"},
                   "attempt": {"type": ["integer", "null"], "minimum": 1,
                               "description": "retrying or failed: the failed attempt's number (N of max_attempts)"},
                   "max_attempts": {"type": ["integer", "null"], "minimum": 1,
                                    "description": "the queue's attempt limit; null without a fixed number"},
                   "last_error": {"type": ["string", "null"],
                                  "description": "retrying or failed: the far end's HTTP status and message, redacted"},
                   "next_attempt_at": {"type": ["string", "null"], "format": "date-time",
                                       "description": "retrying: when Cloud Tasks tries again"}},
}
CHECKOUT_RESULT_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["order_id", "status", "placed_at", "totals", "tasks"],
    "properties": {"order_id": {"type": "string"}, "status": {"type": "string"},
                   "placed_at": {"type": "string", "format": "date-time"}, "totals": _ref("Totals"),
                   "tasks": {"type": "array", "items": _ref("Task")}, "message": {"type": "string"},
                   "test": {"type": "boolean", "description": "true: taken by the test gateway, no money moved"},
                   "cancel_token": {"type": "string", "minLength": 40,
                                    "description": "the order's cancel token: send it as `Authorization: Bearer "
                                                   "<cancel_token>` to POST /api/orders/{order_id}/cancel. Keep it "
                                                   "secret; it is shown once (a replay with the Idempotency-Key "
                                                   "returns a new one and the earlier one stops working). Absent "
                                                   "when the shop does not let customers cancel (or could not store "
                                                   "it: the shop can still cancel the order)"}},
}
ORDER_VIEW_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["order_id", "status", "created_at", "paid_at", "items", "totals", "tasks"],
    "properties": {"order_id": {"type": "string"},
                   "status": {"type": "string",
                              "enum": [*(status.value for status in OrderStatus), "awaiting_payment"]},
                   "test": {"type": "boolean"},
                   "created_at": {"type": "string", "format": "date-time"},
                   "paid_at": {"type": ["string", "null"], "format": "date-time"},
                   "items": {"type": "array", "items": {"type": "object"}},
                   "totals": {"anyOf": [_ref("Totals"), {"type": "null"}]},
                   "tasks": {"type": "array", "items": _ref("Task")},
                   "refund": {"type": "object", "required": ["refund_id", "reason"],
                              "description": "a cancelled order whose payment was refunded, and why",
                              "properties": {"refund_id": {"type": ["string", "null"]},
                                             "reason": {"type": ["string", "null"],
                                                        "enum": [*REFUND_REASONS, None]}}}},
}
AUDIT_COUNTS = ("looked", "settled", "live", "recreated", "vanished", "errors")
RECONCILE_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["orders", "pending", "scheduled", "failed"],
    "properties": {**{k: {"type": "integer", "minimum": 0} for k in ("orders", "pending", "scheduled", "failed")},
                   "audit": {"type": "object", "required": list(AUDIT_COUNTS),
                             "description": "What the auditor found: owed effects past their queue's retry span",
                             "properties": {**{k: {"type": "integer", "minimum": 0} for k in AUDIT_COUNTS},
                                            "states": {"type": "object",
                                                       "additionalProperties": {"type": "integer", "minimum": 0}}}}},
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Repeat a checkout safely: the same key and body return the first answer and never "
                   "charge twice; a different body answers 422; while the first is running, 409.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"},
}


def _checkout_operation() -> dict[str, Any]:
    return {
        "summary": "Pay for a cart and schedule the order's tasks",
        "operationId": "checkout",
        "parameters": [IDEMPOTENCY_KEY],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("CheckoutRequest")}}},
        "responses": {
            "201": _json(_ref("CheckoutResult"), "Paid; every task scheduled"),
            "202": _json(_ref("CheckoutResult"), "Paid; some tasks pending, `reconcile` will schedule them"),
            "400": _error("Invalid JSON or invalid fields (one `fields` entry per bad field; an `order_id` is "
                          "refused: the checkout chooses every id), a bad header, or "
                          "an item the price book does not sell (unknown_sku, inactive_sku, currency_not_offered), "
                          "or a country we do not ship to (unsupported_country)"),
            "402": _error("payment_declined: the card was refused, no tasks; or requires_action: the card "
                          "needs 3-D Secure, error.client_secret completes it and the order is paid by the "
                          "Stripe webhook (error.order_id, error.payment_intent, error.cancel_token)"),
            "409": _error("price_changed: a unit_price differs from the price book (error.prices has the "
                          "current ones); or a request with this Idempotency-Key is in progress"),
            "413": _error("Body over 64 KB"),
            "415": _error("Body is not application/json"),
            "422": _error("Idempotency-Key reused with a different body"),
            "503": _error("Payment processor or store unavailable; nothing charged twice on retry"),
        },
    }


def _stripe_webhook_operation() -> dict[str, Any]:
    return {
        "summary": "Stripe events; payment_intent.succeeded completes an order awaiting 3-D Secure",
        "operationId": "stripeWebhook",
        "parameters": [{"name": "Stripe-Signature", "in": "header", "required": True,
                        "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {"200": _json({"type": "object"}, "Received: `result` is paid, already_paid, refunded (the "
                                                      "order was cancelled while it awaited payment: the payment "
                                                      "went back, once), already_refunded, already_cancelled, "
                                                      "refund_refused, amount_mismatch, unknown_order or ignored"),
                      "400": _error("Missing or invalid Stripe-Signature, or not an event"),
                      "404": _error("No webhook secret configured"),
                      "503": _error("Store or Cloud Tasks unavailable; Stripe retries")},
    }


def _order_operation() -> dict[str, Any]:
    return {
        "summary": "An order and the state of each of its tasks",
        "operationId": "getOrder",
        "parameters": [{"name": "order_id", "in": "path", "required": True, "description": ORDER_ID_RULE,
                        "schema": {"type": "string"}}],
        "responses": {"200": _json(_ref("OrderView"), "The order"),
                      "404": _error("No such order"), "503": _error("Store unavailable")},
    }


CANCEL_RESULT_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["order_id", "status", "tasks"],
    "properties": {
        "order_id": {"type": "string"}, "status": {"const": "cancelled"},
        "refund_id": {"type": ["string", "null"], "description": "the refund of a captured payment"},
        "tasks": {"type": "array", "items": {
            "type": "object", "required": ["kind", "task_name", "state"],
            "properties": {"kind": {"type": "string"}, "task_name": {"type": "string"},
                           "state": {"enum": ["cancelled", "done", "in_flight"],
                                     "description": "done: it happened before the cancel; in_flight: it was "
                                                    "running and may still complete"}}}},
    },
}


def _cancel_operation() -> dict[str, Any]:
    return {
        "summary": "The customer cancels: refund a captured payment and cancel the order's pending tasks",
        "description": "Needs the order's cancel token (CheckoutResult.cancel_token) as `Authorization: Bearer "
                       "<cancel_token>`: the order id alone is not enough. Refused once the order has been "
                       "handed to fulfilment; the shop's operators can still cancel it.",
        "operationId": "cancelOrder",
        "security": [{"cancelToken": []}],
        "parameters": [{"name": "order_id", "in": "path", "required": True, "description": ORDER_ID_RULE,
                        "schema": {"type": "string"}}],
        "responses": {"200": _json(CANCEL_RESULT_SCHEMA, "Cancelled"),
                      "401": _error("cancel_token_required: no `Authorization: Bearer <cancel_token>` header"),
                      "403": _error("invalid_cancel_token: not this order's cancel token; or "
                                    "customer_cancel_disabled: the shop does not take cancellations here"),
                      "404": _error("No such order"),
                      "409": _error("order_cancelled: already cancelled (error.order has it); already_fulfilled: "
                                    "handed to fulfilment (error.fulfilment names the kinds), nothing refunded; "
                                    "or refund_refused"),
                      "503": _error("Payment processor or store unavailable: the order was not cancelled, retry")},
    }


def _reconcile_operation() -> dict[str, Any]:
    return {
        "summary": "Enqueue outbox entries still pending after the grace period (Cloud Scheduler)",
        "operationId": "reconcile",
        "security": [{"oidc": []}],
        "parameters": [{"name": "grace_seconds", "in": "query", "required": False,
                        "schema": {"type": "number", "minimum": 0, "maximum": 86400}}],
        "responses": {"200": _json(_ref("ReconcileSummary"), "What was enqueued"),
                      "400": _error("Invalid grace_seconds"),
                      "401": _error("Missing or invalid OIDC token"),
                      "403": _error("Token of a service account that may not call this"),
                      "503": _error("Store or certificates unavailable")},
    }


def _sweep_operation() -> dict[str, Any]:
    return {
        "summary": "Replay failed tasks an operator marked replay_requested (Cloud Scheduler)",
        "operationId": "sweep",
        "security": [{"oidc": []}],
        "responses": {"200": _json(SWEEP_SCHEMA, "What was replayed"),
                      "401": _error("Missing or invalid OIDC token"),
                      "403": _error("Token of a service account that may not call this"),
                      "503": _error("Store or certificates unavailable")},
    }


SWEEP_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["swept", "results"],
    "properties": {"swept": {"type": "integer", "minimum": 0},
                   "results": {"type": "array", "items": {
                       "type": "object", "required": ["failed_id", "task_name", "status"],
                       "properties": {"failed_id": {"type": "string"}, "task_name": {"type": "string"},
                                      "status": {"type": "string", "enum": ["created", "exists", "failed", "skipped"]},
                                      "error": {"type": ["string", "null"]}}}}},
}


def openapi_document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    request_schema = CheckoutRequest.model_json_schema(ref_template=REF)
    nested = request_schema.pop("$defs", {})
    return {
        "openapi": "3.1.0",
        "info": {"title": "ordertasks checkout API", "version": "1"},
        "paths": {
            "/api/checkout": {"post": _checkout_operation()},
            "/api/orders/{order_id}": {"get": _order_operation()},
            "/api/orders/{order_id}/cancel": {"post": _cancel_operation()},
            "/api/webhooks/stripe": {"post": _stripe_webhook_operation()},
            "/healthz": {"get": {"summary": "Liveness", "operationId": "healthz",
                                 "responses": {"200": _json({"type": "object"}, "Up")}}},
            "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                                      "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")}}},
            "/internal/reconcile": {"post": _reconcile_operation()},
            "/internal/sweep": {"post": _sweep_operation()},
        },
        "components": {
            "schemas": {"CheckoutRequest": request_schema, **nested, "Error": ERROR_SCHEMA,
                        "Totals": TOTALS_SCHEMA, "Task": TASK_SCHEMA, "CheckoutResult": CHECKOUT_RESULT_SCHEMA,
                        "OrderView": ORDER_VIEW_SCHEMA, "ReconcileSummary": RECONCILE_SCHEMA},
            "securitySchemes": {"oidc": {"type": "http", "scheme": "bearer", "bearerFormat": "Google OIDC ID token"},
                                "cancelToken": {"type": "http", "scheme": "bearer",
                                                "bearerFormat": "the cancel_token of the order's checkout answer"}},
        },
    }
