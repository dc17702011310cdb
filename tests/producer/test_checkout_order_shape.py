"""Our checkout and the order's shape: the shop's ``metadata`` kept on the order; the shipping
address still required (tax and shipping are by its country); the checkout's own currencies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ordertasks.producer.tax_rules import CHECKOUT_CURRENCIES, default_table
from tests.producer.conftest import Stack, order_body

METADATA = {"channel": "app", "ab_test": {"variant": "b"}, "tags": ["gift", 2, 0.5, True, None]}


def _fields(resp: Any) -> dict[str, str]:
    assert resp.status_code == 400, resp.get_data(as_text=True)
    return {f["field"]: f["message"] for f in resp.get_json()["error"]["fields"]}


def test_metadata_is_kept_on_the_order(stack: Stack) -> None:
    resp = stack.client.post("/api/checkout", json=order_body(metadata=METADATA))
    assert resp.status_code == 201, resp.get_json()
    order = stack.store.orders.get_order(resp.get_json()["order_id"])
    assert order is not None and order.snapshot["metadata"] == METADATA


def test_an_order_without_metadata_has_an_empty_one(stack: Stack) -> None:
    resp = stack.client.post("/api/checkout", json=order_body())
    assert resp.status_code == 201, resp.get_json()
    order = stack.store.orders.get_order(resp.get_json()["order_id"])
    assert order is not None and order.snapshot["metadata"] == {}


@pytest.mark.parametrize("metadata, message", [
    ({f"k{n}": n for n in range(51)}, "has 51 keys; at most 50"),
    ({"blob": "x" * 17000}, "at most 16384 (16 KiB)"),
    ({"grid": [[1]]}, "grid[0] is an array inside an array"),
    ("a string", "must be a JSON object"),
])
def test_metadata_out_of_bounds_is_400_naming_it(offline_stack: Stack, metadata: Any, message: str) -> None:
    fields = _fields(offline_stack.client.post("/api/checkout", json=order_body(metadata=metadata)))
    assert message in fields["metadata"]
    assert offline_stack.gateway.charges() == []


def test_nan_in_metadata_is_400(offline_stack: Stack) -> None:
    # Python's json module would read NaN, which is not JSON: the checkout refuses the body.
    text = json.dumps(order_body()).removesuffix("}") + ', "metadata": {"score": NaN}}'
    resp = offline_stack.client.post("/api/checkout", data=text, content_type="application/json")
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "invalid_json"
    assert offline_stack.gateway.charges() == []


def test_the_shipping_address_is_still_required_here(offline_stack: Stack) -> None:
    body = {k: v for k, v in order_body().items() if k != "shipping_address"}
    assert _fields(offline_stack.client.post("/api/checkout", json=body))["shipping_address"] == "is required"


def test_the_checkout_sells_in_its_own_currencies_only(offline_stack: Stack) -> None:
    fields = _fields(offline_stack.client.post("/api/checkout", json=order_body(currency="KWD")))
    assert fields["currency"] == f"unknown currency; use one of {', '.join(CHECKOUT_CURRENCIES)}"
    assert set(default_table().shipping) == set(CHECKOUT_CURRENCIES)
