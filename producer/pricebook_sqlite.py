"""The price book in SQLite: table ``products`` in the order store's database file.

One row per SKU; ``prices`` is a JSON object of currency → decimal string, so no price
ever passes through a float. Each call opens its own short-lived connection
(``handlers.backends.sqlite_database.ShortConnections``): the checkout reads a handful of
rows per order and an import writes once, so there is nothing to pool, and threads never
share a connection. Reads take no lock; ``put_products`` writes every row in one
``BEGIN IMMEDIATE`` transaction (all or nothing). ``sqlite3.OperationalError`` becomes
``DependencyUnavailable``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

from ordertasks.handlers.backends.sqlite_database import ShortConnections
from ordertasks.producer.pricebook import Product, check_product

SCHEMA = """CREATE TABLE IF NOT EXISTS products (
    sku TEXT PRIMARY KEY, name TEXT NOT NULL, prices TEXT NOT NULL,
    tax_category TEXT NOT NULL, active INTEGER NOT NULL) WITHOUT ROWID"""
# SQLite caps the number of host parameters in one statement (999 in older builds).
CHUNK = 500


class SqlitePriceBook:
    """``PriceBook`` over the SQLite file at ``path`` (created when missing)."""

    def __init__(self, path: Path, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        # The table is created on first use, not here: building the app must not need the
        # database (a locked or missing store is a 503 per request, not a crash at start).
        self._db = ShortConnections(self.path, SCHEMA, "price book",
                                    "check that the file's directory exists and is writable", busy_timeout)

    def get_products(self, skus: Iterable[str]) -> dict[str, Product]:
        """See ``PriceBook.get_products``."""
        wanted = sorted(set(skus))
        found: dict[str, Product] = {}
        with self._db.reading() as conn:
            for start in range(0, len(wanted), CHUNK):
                chunk = wanted[start:start + CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(f"SELECT * FROM products WHERE sku IN ({marks})", chunk).fetchall()
                found.update((row[0], _product(row)) for row in rows)
        return found

    def put_products(self, products: Iterable[Product]) -> int:
        """See ``PriceBook.put_products``."""
        rows = [_row(check_product(p)) for p in products]
        with self._db.transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO products VALUES (?, ?, ?, ?, ?)", rows)
        return len(rows)

    def list_products(self) -> list[Product]:
        """See ``PriceBook.list_products``."""
        with self._db.reading() as conn:
            return [_product(row) for row in conn.execute("SELECT * FROM products ORDER BY sku")]


def _row(product: Product) -> tuple[str, str, str, str, int]:
    prices = json.dumps({c: str(p) for c, p in sorted(product.prices.items())})
    return product.sku, product.name, prices, product.tax_category, int(product.active)


def _product(row: tuple[str, str, str, str, int]) -> Product:
    sku, name, prices, tax_category, active = row
    return Product(sku=sku, name=name, prices={c: Decimal(p) for c, p in json.loads(prices).items()},
                   tax_category=tax_category, active=bool(active))
