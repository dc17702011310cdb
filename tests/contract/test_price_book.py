"""The ``PriceBook`` contract, over memory, SQLite and Firestore (the emulator)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ordertasks.producer.pricebook import InvalidProduct, MemoryPriceBook, PriceBook, Product
from ordertasks.producer.pricebook_sqlite import SqlitePriceBook
from tests.contract.conftest import BACKENDS, firestore_client_for, sanitized_project_id

MUG = Product("MUG-1", "Mug", {"EUR": Decimal("9.50"), "JPY": Decimal("1500")})
TEA = Product("TEA-7", "Tea", {"EUR": Decimal("4.25")}, tax_category="reduced", active=False)


@pytest.fixture(params=BACKENDS)
def book(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh, empty price book of each backend."""
    if request.param == "memory":
        yield MemoryPriceBook()
    elif request.param == "sqlite":
        yield SqlitePriceBook(tmp_path / "store.db")
    else:
        from ordertasks.producer.pricebook_firestore import FirestorePriceBook

        request.getfixturevalue("firestore_emulator")
        yield FirestorePriceBook(firestore_client_for(sanitized_project_id()))


def test_every_backend_is_a_price_book(book: Any) -> None:
    assert isinstance(book, PriceBook)


def test_products_come_back_exactly_as_put(book: Any) -> None:
    assert book.put_products([MUG, TEA]) == 2
    found = book.get_products(["TEA-7", "MUG-1", "NOPE-9"])
    assert found == {"MUG-1": MUG, "TEA-7": TEA}
    assert found["MUG-1"].prices["EUR"] == Decimal("9.50") and isinstance(found["MUG-1"].prices["EUR"], Decimal)
    assert str(found["MUG-1"].prices["EUR"]) == "9.50"   # never through a float


def test_put_replaces_the_whole_product(book: Any) -> None:
    book.put_products([MUG])
    cheaper = Product("MUG-1", "Mug, blue", {"GBP": Decimal("7.00")}, active=False)
    book.put_products([cheaper])
    assert book.get_products(["MUG-1"]) == {"MUG-1": cheaper}


def test_list_is_ordered_by_sku_and_includes_inactive(book: Any) -> None:
    book.put_products([TEA, MUG])
    assert [p.sku for p in book.list_products()] == ["MUG-1", "TEA-7"]


def test_an_empty_lookup_and_an_empty_book(book: Any) -> None:
    assert book.get_products([]) == {}
    assert book.list_products() == []
    assert book.get_products(["MUG-1"]) == {}


def test_lookups_of_many_skus(book: Any) -> None:
    products = [Product(f"SKU-{n:04d}", f"Item {n}", {"EUR": Decimal(n + 1)}) for n in range(600)]
    assert book.put_products(products) == 600
    wanted = [p.sku for p in products[::3]]
    assert set(book.get_products(wanted)) == set(wanted)


@pytest.mark.parametrize("bad, names", [
    (Product("MUG 1", "Mug", {"EUR": Decimal("1")}), "sku"),
    (Product("MUG-1", "", {"EUR": Decimal("1")}), "name"),
    (Product("MUG-1", "Mug\r\nBcc: x", {"EUR": Decimal("1")}), "name"),
    (Product("MUG-1", "Mug", {}), "price"),
    (Product("MUG-1", "Mug", {"EUR": Decimal("0")}), "positive"),
    (Product("MUG-1", "Mug", {"EUR": Decimal("-1")}), "positive"),
    (Product("MUG-1", "Mug", {"EUR": Decimal("9.999")}), "decimal places"),
    (Product("MUG-1", "Mug", {"JPY": Decimal("9.5")}), "decimal places"),
    (Product("MUG-1", "Mug", {"XXX": Decimal("1")}), "currency"),
    (Product("MUG-1", "Mug", {"EUR": Decimal("NaN")}), "positive"),
])
def test_invalid_products_are_refused_and_nothing_is_written(book: Any, bad: Product, names: str) -> None:
    with pytest.raises(InvalidProduct, match=names):
        book.put_products([TEA, bad])
    assert book.list_products() == []
