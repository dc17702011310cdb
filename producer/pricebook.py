"""The price book: the server-side product catalogue the checkout prices every cart from.

A product is ``products/{sku}``: a name, a unit price per currency, a tax category and an
active flag. The checkout never takes a price from the client: a request's ``unit_price``
is only compared with the book (see ``producer.cart``).

``PriceBook`` is the port; backends are ``MemoryPriceBook`` (here, for tests and
embedding), ``producer.pricebook_sqlite.SqlitePriceBook`` (the local default, in the order
store's database file) and ``producer.pricebook_firestore.FirestorePriceBook`` (the cloud).
``tests/contract/test_price_book.py`` runs the same contract over all three.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol, runtime_checkable

from ordertasks.handlers.contract import CURRENCY_EXPONENT, SKU
from ordertasks.handlers.errors import OrderTasksError
from ordertasks.producer.tax_rules import CHECKOUT_CURRENCIES

DEFAULT_TAX_CATEGORY = "standard"
SKU_PATTERN = SKU  # the task contract's LineItem.sku rule, so every priced SKU can be scheduled


class InvalidProduct(OrderTasksError, ValueError):
    """A product that must not enter the price book; the message says which field and why."""


@dataclass(frozen=True)
class Product:
    """One sellable thing: ``prices`` maps a currency code to the unit price in it."""

    sku: str
    name: str
    prices: Mapping[str, Decimal] = field(default_factory=dict)
    tax_category: str = DEFAULT_TAX_CATEGORY
    active: bool = True

    def price_in(self, currency: str) -> Decimal | None:
        """The unit price in ``currency``, or ``None`` when the product is not sold in it."""
        return self.prices.get(currency)


def check_product(product: Product) -> Product:
    """``product`` if every field is sound; raise ``InvalidProduct`` naming the field otherwise."""
    if not SKU_PATTERN.fullmatch(product.sku):
        raise InvalidProduct(f"sku {product.sku[:80]!r} must be 1-64 characters of A-Z a-z 0-9 . _ -")
    if not product.name.strip() or len(product.name) > 200 or not product.name.isprintable():
        raise InvalidProduct(f"{product.sku}: name must be 1-200 printable characters")
    if not product.prices:
        raise InvalidProduct(f"{product.sku}: needs a price in at least one currency")
    for currency, price in product.prices.items():
        _check_price(product.sku, currency, price)
    if not product.tax_category.isidentifier():
        raise InvalidProduct(f"{product.sku}: tax_category {product.tax_category!r} must be a word such as standard")
    return product


def _check_price(sku: str, currency: str, price: Decimal) -> None:
    if currency not in CHECKOUT_CURRENCIES:
        raise InvalidProduct(f"{sku}: unknown currency {currency!r}; use one of {', '.join(CHECKOUT_CURRENCIES)}")
    if not price.is_finite() or price <= 0:
        raise InvalidProduct(f"{sku}: the {currency} price must be a positive amount, not {price}")
    if -price.normalize().as_tuple().exponent > CURRENCY_EXPONENT[currency]:  # type: ignore[operator]
        raise InvalidProduct(f"{sku}: {currency} prices have at most {CURRENCY_EXPONENT[currency]} decimal places")


@runtime_checkable
class PriceBook(Protocol):
    """Products by SKU. Reads raise ``DependencyUnavailable`` when the backend is unreachable."""

    def get_products(self, skus: Iterable[str]) -> dict[str, Product]:
        """The products among ``skus`` that exist (active or not), keyed by SKU; unknown SKUs are absent."""
        ...

    def put_products(self, products: Iterable[Product]) -> int:
        """Create or replace each product (whole record) after ``check_product``; return how many.

        All or nothing: an invalid product raises ``InvalidProduct`` and nothing is written.
        """
        ...

    def list_products(self) -> list[Product]:
        """Every product, active or not, ordered by SKU."""
        ...


class MemoryPriceBook:
    """A ``PriceBook`` in a dict: for tests and for shops embedding the checkout."""

    def __init__(self, products: Iterable[Product] = ()) -> None:
        self._products: dict[str, Product] = {}
        self._lock = threading.Lock()
        self.put_products(products)

    def get_products(self, skus: Iterable[str]) -> dict[str, Product]:
        """See ``PriceBook.get_products``."""
        with self._lock:
            return {sku: self._products[sku] for sku in skus if sku in self._products}

    def put_products(self, products: Iterable[Product]) -> int:
        """See ``PriceBook.put_products``."""
        checked = [check_product(p) for p in products]
        with self._lock:
            self._products.update({p.sku: p for p in checked})
        return len(checked)

    def list_products(self) -> list[Product]:
        """See ``PriceBook.list_products``."""
        with self._lock:
            return [self._products[sku] for sku in sorted(self._products)]
