"""Price a cart from the price book: the only place a checkout's line prices come from.

For each requested line: the SKU must be in the book, active, and sold in the order's
currency, else 400 naming the line (``unknown_sku``, ``inactive_sku``,
``currency_not_offered``). A ``unit_price`` sent by the client is optional; when present it
must equal the book's price, else 409 ``price_changed`` with every line's current price,
so a client showing stale prices can show the new ones and ask again. The line items that
leave here carry the book's name and price, whatever the request said.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ordertasks.handlers.contract import LineItem
from ordertasks.producer.api_errors import ApiError
from ordertasks.producer.pricebook import PriceBook, Product

MAX_SUBTOTAL = Decimal("100000000")


@dataclass(frozen=True)
class PricedCart:
    """The cart at book prices, and each SKU's tax category for the tax rules."""

    items: tuple[LineItem, ...]
    tax_categories: Mapping[str, str]


def price_cart(lines: Sequence[Any], currency: str, book: PriceBook) -> PricedCart:
    """The cart as ``LineItem`` s at book prices; raises ``ApiError`` 400/409 (module docstring)."""
    products = book.get_products(line.sku for line in lines)
    problems = [p for i, line in enumerate(lines) if (p := _line_problem(i, line, products.get(line.sku), currency))]
    if problems:
        code = problems[0]["code"]
        raise ApiError(400, code, f"{len(problems)} item(s) cannot be sold: " + "; ".join(
            f"{p['field']}: {p['message']}" for p in problems[:3]), [_field(p) for p in problems])
    items = tuple(_line_item(line, products[line.sku], currency) for line in lines)
    _check_prices(lines, items, currency)
    if sum(item.line_total for item in items) > MAX_SUBTOTAL:
        raise ApiError(400, "invalid_request", f"the order's subtotal is over {MAX_SUBTOTAL}; split the order",
                       [{"field": "items", "message": f"subtotal over {MAX_SUBTOTAL}"}])
    return PricedCart(items, {sku: products[sku].tax_category for sku in {item.sku for item in items}})


def _line_problem(index: int, line: Any, product: Product | None, currency: str) -> dict[str, str] | None:
    field = f"items.{index}.sku"
    if product is None:
        return {"field": field, "code": "unknown_sku", "message": f"no product {line.sku!r} in the price book"}
    if not product.active:
        return {"field": field, "code": "inactive_sku", "message": f"product {line.sku!r} is no longer sold"}
    if product.price_in(currency) is None:
        return {"field": field, "code": "currency_not_offered",
                "message": f"product {line.sku!r} has no {currency} price; sold in {', '.join(sorted(product.prices))}"}
    return None


def _field(problem: dict[str, str]) -> dict[str, str]:
    return {"field": problem["field"], "message": problem["message"]}


def _line_item(line: Any, product: Product, currency: str) -> LineItem:
    return LineItem(sku=product.sku, name=product.name, quantity=line.quantity,
                    unit_price=product.prices[currency])


def _check_prices(lines: Sequence[Any], items: Sequence[LineItem], currency: str) -> None:
    stale = [i for i, (line, item) in enumerate(zip(lines, items))
             if line.unit_price is not None and line.unit_price != item.unit_price]
    if not stale:
        return
    fields = [{"field": f"items.{i}.unit_price",
               "message": f"is {lines[i].unit_price}, the current price is {items[i].unit_price} {currency}"}
              for i in stale]
    prices = [{"sku": item.sku, "name": item.name, "unit_price": str(item.unit_price), "currency": currency}
              for item in items]
    raise ApiError(409, "price_changed", f"the price of {len(stale)} item(s) changed; show the current prices "
                   "(in error.prices) and send the order again", fields, extra={"prices": prices})
