"""Addresses and names the checkout takes are ones the handler can always send to.

The review found ``a@b.c,d``, ``a@b..c``, ``.a@b.c``, ``ü@exämple.de``, … accepted at
checkout: the customer was charged, then three email tasks failed five times each and no
replay could fix them. And a name carrying an encoded word injected headers. All are now
400 at checkout, before any charge.
"""

from __future__ import annotations

import base64

import pytest

from tests.producer.conftest import Stack, order_body

INJECTION = "=?utf-8?b?" + base64.b64encode(b"x\r\nBcc: victim@evil.example\r\n\r\n<h1>phish</h1>").decode() + "?="
HOSTILE_ADDRESSES = ["a@b.c,d", "a,b@c.de", "a@b.de;c", "a@[1.2.3.4].x", "a@b..c", ".a@b.c", "a\\@b.c",
                     "ü@exämple.de", '"a b"@c.de', "a@localhost", "Ada <ada@example.com>", "a\u2028b@c.de",
                     "ada@example.com\r\nBcc: x@y.z"]
HOSTILE_NAMES = [INJECTION, "=?iso-8859-1?q?A=0D=0ABcc:_x@y.z?=", "Ada =?", "Ada\r\nBcc: x@y.z", "Ada\x00",
                 "Ada\u2028Lovelace", "Ada\u2029Byron", "Ada\x1b[31m"]


def _customer(**fields: str) -> dict[str, str]:
    return {**order_body()["customer"], **fields}


@pytest.mark.parametrize("address", HOSTILE_ADDRESSES)
def test_hostile_addresses_are_400_naming_the_field(offline_stack: Stack, address: str) -> None:
    resp = offline_stack.client.post("/api/checkout", json=order_body(customer=_customer(email=address)))
    assert resp.status_code == 400, resp.get_json()
    error = resp.get_json()["error"]
    assert error["code"] == "invalid_request"
    [field] = error["fields"]
    assert field["field"] == "customer.email"
    assert "email address" in field["message"] or "line breaks" in field["message"]
    assert offline_stack.gateway.charges() == []


@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.parametrize("where", ["customer", "shipping_address"])
def test_hostile_names_are_400_naming_the_field(offline_stack: Stack, name: str, where: str) -> None:
    body = order_body()
    body[where] = {**body[where], "name": name}
    resp = offline_stack.client.post("/api/checkout", json=body)
    assert resp.status_code == 400, resp.get_json()
    [field] = resp.get_json()["error"]["fields"]
    assert field["field"] == f"{where}.name"
    assert offline_stack.gateway.charges() == []


@pytest.mark.parametrize("sent, stored", [
    ("Ada@Example.COM", "Ada@example.com"),
    ("ada@exämple.de", "ada@xn--exmple-cua.de"),
    ("  ada@example.com ", "ada@example.com"),
])
def test_addresses_are_stored_normalised(stack: Stack, sent: str, stored: str) -> None:
    resp = stack.client.post("/api/checkout", json=order_body(customer=_customer(email=sent)))
    assert resp.status_code == 201, resp.get_json()
    order = stack.store.orders.get_order(resp.get_json()["order_id"])
    assert order is not None and order.snapshot["customer"]["email"] == stored


def test_names_in_any_script_are_welcome(stack: Stack) -> None:
    for name in ["Zoë Müller-Łukasiewicz", "山田 太郎", "O'Brien, Ada (née Byron)", "Ада"]:
        resp = stack.client.post("/api/checkout", json=order_body(customer=_customer(name=name)))
        assert resp.status_code == 201, (name, resp.get_json())
