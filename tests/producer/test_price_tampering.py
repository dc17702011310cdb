"""Prices come from the price book, never from the request (the review's critical finding).

``"unit_price": "0.00"`` used to give 201 with a total of the shipping alone, and the
warehouse was told to ship. Now a client price that differs from the book is 409
``price_changed`` (nothing stored, nothing charged, no task), an omitted one is priced from
the book, and an unknown or inactive SKU is 400 naming the line.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordertasks.producer.api_errors import ApiError
from ordertasks.producer.cart import price_cart
from ordertasks.producer.checkout_request import CheckoutRequest
from ordertasks.producer.pricebook import MemoryPriceBook, Product
from ordertasks.producer.pricing import compute_totals
from ordertasks.producer.products import DEMO_CATALOGUE, read_products
from tests.producer.conftest import Stack, order_body

BOOK = {p.sku: p for p in read_products(DEMO_CATALOGUE.read_text(), "demo")}


def _item(sku: str = "MUG-1", quantity: int = 2, **extra: Any) -> dict[str, Any]:
    return {"sku": sku, "quantity": quantity, **extra}


def _book_total(items: list[dict[str, Any]], currency: str = "EUR", country: str = "DE") -> Decimal:
    cart = price_cart(CheckoutRequest.model_validate(order_body(items=items)).items, currency,
                      MemoryPriceBook(BOOK.values()))
    return compute_totals(cart.items, currency, country).total


def _no_order_and_no_charge(stack: Stack) -> None:
    assert stack.gateway.charges() == []
    assert stack.tasks() == []


@pytest.mark.parametrize("claimed", ["0.00", "0.01", "9.49", "9.51", "95.00"])
def test_a_price_other_than_the_books_is_409_with_the_current_prices(stack: Stack, claimed: str) -> None:
    body = order_body(items=[_item(unit_price=claimed), _item("TEA-7", 1, unit_price="4.25")])
    resp = stack.client.post("/api/checkout", json=body)
    assert resp.status_code == 409, resp.get_json()
    error = resp.get_json()["error"]
    assert error["code"] == "price_changed"
    assert error["fields"] == [{"field": "items.0.unit_price",
                                "message": f"is {claimed}, the current price is 9.50 EUR"}]
    assert error["prices"] == [
        {"sku": "MUG-1", "name": "Mug", "unit_price": "9.50", "currency": "EUR"},
        {"sku": "TEA-7", "name": "Tea", "unit_price": "4.25", "currency": "EUR"}]
    _no_order_and_no_charge(stack)


def test_the_books_price_written_differently_is_the_same_price(stack: Stack) -> None:
    resp = stack.client.post("/api/checkout", json=order_body(items=[_item(unit_price="9.5")]))
    assert resp.status_code == 201, resp.get_json()


def test_an_omitted_price_is_charged_at_the_book_price_with_the_books_name(stack: Stack) -> None:
    items = [_item(name="Free mug, trust me"), _item("TEA-7", 3)]
    resp = stack.client.post("/api/checkout", json=order_body(items=items))
    assert resp.status_code == 201, resp.get_json()
    totals = resp.get_json()["totals"]
    subtotal = Decimal("9.50") * 2 + Decimal("4.25") * 3
    assert Decimal(totals["subtotal"]) == subtotal
    assert Decimal(totals["total"]) == _book_total(items)
    [charge] = stack.gateway.charges()
    assert charge.amount == Decimal(totals["total"]) and charge.currency == "EUR"
    order = stack.store.orders.get_order(resp.get_json()["order_id"])
    assert order is not None
    assert [(i["name"], i["unit_price"]) for i in order.snapshot["items"]] == [("Mug", "9.50"), ("Tea", "4.25")]


@pytest.mark.parametrize("sku, code, message", [
    ("NOPE-1", "unknown_sku", "no product 'NOPE-1' in the price book"),
    ("OLD-0", "inactive_sku", "product 'OLD-0' is no longer sold"),
])
@pytest.mark.parametrize("price", [None, "0.00", "1.00"])
def test_unknown_and_inactive_skus_are_400_naming_the_line(stack: Stack, sku: str, code: str, message: str,
                                                           price: str | None) -> None:
    extra = {} if price is None else {"unit_price": price}
    resp = stack.client.post("/api/checkout", json=order_body(items=[_item(), _item(sku, 1, **extra)]))
    assert resp.status_code == 400, resp.get_json()
    error = resp.get_json()["error"]
    assert error["code"] == code
    assert error["fields"] == [{"field": "items.1.sku", "message": message}]
    _no_order_and_no_charge(stack)


def test_a_currency_the_product_is_not_sold_in_is_400(stack: Stack) -> None:
    stack_book = MemoryPriceBook([Product("EU-ONLY", "Only in euros", {"EUR": Decimal("5")})])
    with pytest.raises(ApiError) as caught:
        price_cart(CheckoutRequest.model_validate(order_body(items=[_item("EU-ONLY")], currency="GBP")).items,
                   "GBP", stack_book)
    assert caught.value.status == 400 and caught.value.code == "currency_not_offered"
    assert caught.value.fields[0]["field"] == "items.0.sku"


def test_a_price_change_in_the_book_is_seen_by_the_next_checkout(stack: Stack) -> None:
    from ordertasks.producer import wiring

    book = wiring.price_book(stack.settings)
    book.put_products([Product("MUG-1", "Mug", {"EUR": Decimal("11.00")})])
    resp = stack.client.post("/api/checkout", json=order_body(items=[_item(unit_price="9.50")]))
    assert resp.status_code == 409
    assert resp.get_json()["error"]["prices"][0]["unit_price"] == "11.00"
    resp = stack.client.post("/api/checkout", json=order_body(items=[_item(unit_price="11.00")]))
    assert resp.status_code == 201
    assert stack.gateway.charges()[0].amount == Decimal(resp.get_json()["totals"]["total"])


SKUS = st.sampled_from(sorted(sku for sku, p in BOOK.items() if p.active))
CLAIMS = st.one_of(st.none(), st.decimals(min_value=0, max_value=200, places=2).map(str))
LINES = st.lists(st.fixed_dictionaries({"sku": SKUS, "quantity": st.integers(1, 50), "claim": CLAIMS}),
                 min_size=1, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=LINES)
def test_no_claimed_price_ever_lowers_the_total_below_the_books(lines: list[dict[str, Any]]) -> None:
    items = [_item(line["sku"], line["quantity"], **({} if line["claim"] is None else {"unit_price": line["claim"]}))
             for line in lines]
    request = CheckoutRequest.model_validate(order_body(items=items))
    book = MemoryPriceBook(BOOK.values())
    at_book_price = sum(BOOK[line["sku"]].prices["EUR"] * line["quantity"] for line in lines)
    try:
        priced = price_cart(request.items, "EUR", book).items
    except ApiError as err:
        assert err.status == 409 and err.code == "price_changed"
        assert any(line["claim"] is not None and Decimal(line["claim"]) != BOOK[line["sku"]].prices["EUR"]
                   for line in lines)
        return
    assert sum(item.line_total for item in priced) == at_book_price
    assert all(item.unit_price == BOOK[item.sku].prices["EUR"] for item in priced)


def test_a_resumed_checkout_completes_at_the_price_first_shown(tmp_path: Any, emulator: Any) -> None:
    from ordertasks.producer import wiring
    from ordertasks.producer.checkout import create_app
    from ordertasks.producer.payments import LocalGateway, PaymentUnavailable
    from tests.producer.conftest import build_stack

    class DownOnce(LocalGateway):
        calls = 0

        def charge(self, key: str, amount: Decimal, currency: str, token: str) -> str:
            DownOnce.calls += 1
            if DownOnce.calls == 1:
                raise PaymentUnavailable("processor timed out")
            return super().charge(key, amount, currency, token)

    stack = build_stack(tmp_path, emulator)
    gateway = DownOnce()
    app = create_app(stack.settings, store=stack.store, enqueuer=stack.enqueuer, gateway=gateway)
    body = order_body(items=[_item(unit_price="9.50")])
    assert app.test_client().post("/api/checkout", json=body, headers={"Idempotency-Key": "k-r"}).status_code == 503
    wiring.price_book(stack.settings).put_products([Product("MUG-1", "Mug", {"EUR": Decimal("12.00")})])
    retry = app.test_client().post("/api/checkout", json=body, headers={"Idempotency-Key": "k-r"})
    assert retry.status_code == 201, retry.get_json()
    assert gateway.charges()[0].amount == Decimal(retry.get_json()["totals"]["total"])
    assert Decimal(retry.get_json()["totals"]["subtotal"]) == Decimal("19.00")
    stack.enqueuer.close()
