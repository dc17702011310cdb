"""Every bad request gets its 4xx, the JSON error shape and a message saying what to do.

Validation happens before any charge or enqueue, so these run with Cloud Tasks unreachable.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.producer.conftest import Stack, order_body


def _item(**changes: Any) -> dict[str, Any]:
    return {"sku": "MUG-1", "name": "Mug", "quantity": 1, "unit_price": "9.50", **changes}


def _error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    error = resp.get_json()["error"]
    assert set(error) == {"code", "message", "fields"}
    return error  # type: ignore[no-any-return]


BAD_FIELDS = [
    ("bad email", order_body(customer={"name": "Ada", "email": "ada-at-example"}),
     "customer.email", "email address"),
    ("empty items", order_body(items=[]), "items", "at least 1"),
    ("quantity zero", order_body(items=[_item(quantity=0)]), "items.0.quantity", "greater than 0"),
    ("quantity negative", order_body(items=[_item(quantity=-3)]), "items.0.quantity", "greater than 0"),
    ("quantity fractional", order_body(items=[_item(quantity=1.5)]), "items.0.quantity", "whole number"),
    ("negative price", order_body(items=[_item(unit_price="-1.00")]), "items.0.unit_price", "negative"),
    ("non-decimal price", order_body(items=[_item(unit_price="12,50")]), "items.0.unit_price", "decimal string"),
    ("price as a number", order_body(items=[_item(unit_price=9.5)]), "items.0.unit_price", "not a JSON number"),
    ("too many decimals", order_body(items=[_item(unit_price="9.999")]), "items", "at most 2 decimal places"),
    ("unknown currency", order_body(currency="XYZ"), "currency", "unknown currency"),
    ("lower-case country", order_body(shipping_address={**order_body()["shipping_address"], "country": "de"}),
     "shipping_address.country", "two-letter"),
    ("missing token", {k: v for k, v in order_body().items() if k != "payment_token"}, "payment_token", "required"),
    ("unknown field", order_body(coupon="FREE"), "coupon", "not a known field"),
    ("control character", order_body(customer={"name": "Ada\r\nBcc: x@y.z", "email": "ada@example.com"}),
     "customer.name", "control characters"),
    # The checkout chooses every order id: any client id, valid-looking or not, is refused.
    ("order id with slash", order_body(order_id="a/b"), "order_id", "chosen by the checkout"),
    ("order id dot-dot", order_body(order_id=".."), "order_id", "chosen by the checkout"),
    ("order id unicode", order_body(order_id="bestellung-ä"), "order_id", "chosen by the checkout"),
    ("order id too long", order_body(order_id="a" * 65), "order_id", "chosen by the checkout"),
    ("order id leading __", order_body(order_id="__admin"), "order_id", "chosen by the checkout"),
    ("order id valid-looking", order_body(order_id="A1001"), "order_id", "chosen by the checkout"),
    ("order id null", order_body(order_id=None), "order_id", "chosen by the checkout"),
]


@pytest.mark.parametrize("body,field,message", [c[1:] for c in BAD_FIELDS], ids=[c[0] for c in BAD_FIELDS])
def test_bad_field_is_400_naming_the_field(offline_stack: Stack, body: dict[str, Any], field: str,
                                           message: str) -> None:
    error = _error(offline_stack.client.post("/api/checkout", json=body), 400)
    assert error["code"] == "invalid_request"
    assert [f["field"] for f in error["fields"]] == [field]
    assert message in error["fields"][0]["message"]
    assert offline_stack.gateway.charges() == []


def test_one_fields_entry_per_bad_field(offline_stack: Stack) -> None:
    body = order_body(customer={"name": "", "email": "nope"}, currency="XYZ",
                      items=[_item(quantity=0, unit_price="-2")])
    error = _error(offline_stack.client.post("/api/checkout", json=body), 400)
    fields = [f["field"] for f in error["fields"]]
    assert sorted(fields) == sorted(["customer.name", "customer.email", "currency",
                                     "items.0.quantity", "items.0.unit_price"])
    assert "5 invalid field(s)" in error["message"]


def test_over_64_kb_is_413(offline_stack: Stack) -> None:
    body = order_body(items=[_item(name="x" * 200)] * 400)
    raw = json.dumps(body).encode()
    assert len(raw) > 64 * 1024
    error = _error(offline_stack.client.post("/api/checkout", data=raw, content_type="application/json"), 413)
    assert "64 KB" in error["message"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_not_json_is_415(offline_stack: Stack, content_type: str | None) -> None:
    resp = offline_stack.client.post("/api/checkout", data=json.dumps(order_body()), content_type=content_type)
    assert "Content-Type: application/json" in _error(resp, 415)["message"]


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b'"order"', b"null", b'{"quantity": NaN}', b"\xff\xfe",
                                 b"[" * 50_000 + b"]" * 50_000])
def test_malformed_json_is_400(offline_stack: Stack, raw: bytes) -> None:
    resp = offline_stack.client.post("/api/checkout", data=raw[:60_000], content_type="application/json")
    assert _error(resp, 400)["code"] in {"invalid_json", "invalid_request"}


def test_lone_surrogate_in_a_name_is_400(offline_stack: Stack) -> None:
    raw = json.dumps(order_body()).replace('"Ada Lovelace"', '"Ada \\ud800"', 1).encode()
    error = _error(offline_stack.client.post("/api/checkout", data=raw, content_type="application/json"), 400)
    assert error["fields"][0]["field"] == "customer.name"


def test_bad_idempotency_key_is_400(offline_stack: Stack) -> None:
    resp = offline_stack.client.post("/api/checkout", json=order_body(), headers={"Idempotency-Key": "a b"})
    assert _error(resp, 400)["code"] == "invalid_idempotency_key"


def test_unknown_route_and_method_answer_json(offline_stack: Stack) -> None:
    assert _error(offline_stack.client.get("/api/nope"), 404)["code"] == "not_found"
    resp = offline_stack.client.get("/api/checkout")
    assert _error(resp, 405)["code"] == "method_not_allowed"
    assert "POST" in resp.headers["Allow"]


def test_unknown_order_is_404(offline_stack: Stack) -> None:
    assert _error(offline_stack.client.get("/api/orders/ord_missing"), 404)["code"] == "order_not_found"


def test_healthz(offline_stack: Stack) -> None:
    assert offline_stack.client.get("/healthz").get_json() == {"status": "ok"}


def test_bad_grace_seconds_is_400(offline_stack: Stack) -> None:
    resp = offline_stack.client.post("/internal/reconcile?grace_seconds=soon")
    assert _error(resp, 400)["code"] == "invalid_grace_seconds"
