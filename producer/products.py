"""``ordertasks products import FILE.csv`` and ``ordertasks products list``: manage the price book.

The CSV has a header row. Columns: ``sku`` and ``name`` (required), ``tax_category``
(default ``standard``), ``active`` (``true``/``false``, default ``true``) and one column per
currency code (``EUR``, ``GBP``, …) holding the unit price as a decimal (``19.50``); an
empty cell means "not sold in that currency". Each row replaces the product with its SKU;
products not in the file are left alone (set ``active`` to ``false`` to stop selling one).
The whole file is checked before anything is written, and an error names its line.

``import --if-empty`` imports only into an empty price book: ``ordertasks dev`` seeds the
demo catalogue (``producer/data/demo_products.csv``) that way, so edits survive restarts.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TextIO

from ordertasks.handlers.errors import ConfigurationError, DependencyUnavailable
from ordertasks.producer.pricebook import DEFAULT_TAX_CATEGORY, InvalidProduct, PriceBook, Product, check_product
from ordertasks.producer.tax_rules import CHECKOUT_CURRENCIES
from ordertasks.producer.terminal import for_terminal

DEMO_CATALOGUE = Path(__file__).resolve().parent / "data" / "demo_products.csv"
REQUIRED = ("sku", "name")
KNOWN = {"sku", "name", "tax_category", "active"}
TRUE, FALSE = {"true", "yes", "1", ""}, {"false", "no", "0"}


class CatalogueFileError(ConfigurationError, ValueError):
    """The CSV file is malformed; the message names the line."""


def read_products(text: str, source: str = "products.csv") -> list[Product]:
    """Every row of a price-book CSV as a checked ``Product``; ``CatalogueFileError`` otherwise."""
    reader = csv.DictReader(io.StringIO(text))
    currencies = _currency_columns(reader.fieldnames or [], source)
    products: dict[str, Product] = {}
    for row in reader:
        product = _row_product(row, currencies, f"{source}:{reader.line_num}")
        if product.sku in products:
            raise CatalogueFileError(f"{source}:{reader.line_num}: sku {product.sku!r} appears twice")
        products[product.sku] = product
    return list(products.values())


def _currency_columns(header: Sequence[str], source: str) -> list[str]:
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise CatalogueFileError(f"{source}:1: the header needs the column(s) {', '.join(missing)}")
    unknown = [c for c in header if c not in KNOWN and c not in CHECKOUT_CURRENCIES]
    if unknown:
        raise CatalogueFileError(f"{source}:1: unknown column(s) {', '.join(unknown)}; use sku, name, tax_category, "
                                 f"active and currency codes ({', '.join(CHECKOUT_CURRENCIES)})")
    currencies = [c for c in header if c in CHECKOUT_CURRENCIES]
    if not currencies:
        raise CatalogueFileError(f"{source}:1: no price column; add one per currency, e.g. EUR")
    return currencies


def _row_product(row: dict[str, str | None], currencies: Iterable[str], where: str) -> Product:
    try:
        prices = {c: _price(row.get(c), c, where) for c in currencies if (row.get(c) or "").strip()}
        product = Product(sku=(row.get("sku") or "").strip(), name=(row.get("name") or "").strip(), prices=prices,
                          tax_category=(row.get("tax_category") or "").strip() or DEFAULT_TAX_CATEGORY,
                          active=_active(row.get("active"), where))
        return check_product(product)
    except InvalidProduct as exc:
        raise CatalogueFileError(f"{where}: {exc}") from exc


def _price(cell: str | None, currency: str, where: str) -> Decimal:
    try:
        return Decimal((cell or "").strip())
    except InvalidOperation as exc:
        raise CatalogueFileError(f"{where}: the {currency} price {cell!r} is not a decimal such as 19.50") from exc


def _active(cell: str | None, where: str) -> bool:
    value = (cell or "").strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise CatalogueFileError(f"{where}: active must be true or false, not {cell!r}")


def import_file(book: PriceBook, path: Path, *, if_empty: bool = False) -> int:
    """Import ``path`` into ``book``; return how many products were written (0 when skipped)."""
    products = read_products(path.read_text(encoding="utf-8-sig"), str(path))
    if if_empty and book.list_products():
        return 0
    return book.put_products(products)


def format_table(products: Sequence[Product]) -> str:
    """The price book as an aligned text table, one product per line."""
    rows = [("SKU", "NAME", "PRICES", "TAX", "ACTIVE")]
    rows += [(p.sku, p.name, " ".join(f"{c} {v}" for c, v in sorted(p.prices.items())), p.tax_category,
              "yes" if p.active else "no") for p in products]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[4] for r in rows)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ordertasks products", description="Manage the checkout's price book.")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION", help="import or list")
    imp = sub.add_parser("import", help="create or replace products from a CSV file")
    imp.add_argument("file", type=Path, help="CSV with sku,name[,tax_category,active] and one column per currency")
    imp.add_argument("--if-empty", action="store_true", help="import only when the price book has no product")
    sub.add_parser("list", help="print every product")
    return parser


def main(argv: Sequence[str] | None = None, book: PriceBook | None = None, out: TextIO = sys.stdout) -> int:
    """Entry point of ``ordertasks products``."""
    args = _parser().parse_args(argv)
    try:
        book = book or _wired_book(reads_only=args.action == "list")
        return _import(book, args, out) if args.action == "import" else _list(book, out)
    except BrokenPipeError:
        raise                       # the reader went away: ordertasks.cli ends quietly
    except (CatalogueFileError, OSError, DependencyUnavailable) as exc:
        print(f"ordertasks products: {exc}", file=sys.stderr)
        return 1


# `products list` on a directory with no store is a mistyped ORDERTASKS_DATA_DIR, not an empty book.
LIST_REMEDY = ("check ORDERTASKS_DATA_DIR; start the local stack there with `ordertasks dev --data-dir {data_dir}`, "
               "or create the price book with `ordertasks products import FILE.csv`")


def _wired_book(reads_only: bool = False) -> PriceBook:
    from ordertasks.handlers.config import Settings
    from ordertasks.producer import wiring
    from ordertasks.producer.backend_flags import require_local_data

    settings = Settings.from_env()
    if reads_only:
        require_local_data(settings, LIST_REMEDY)
    return wiring.price_book(settings)


def _import(book: PriceBook, args: argparse.Namespace, out: TextIO) -> int:
    written = import_file(book, args.file, if_empty=args.if_empty)
    if args.if_empty and written == 0:
        print("the price book already has products; nothing imported", file=out)
    else:
        print(f"imported {written} product(s) from {args.file}", file=out)
    return 0


def _list(book: PriceBook, out: TextIO) -> int:
    products = book.list_products()
    print(for_terminal(format_table(products)) if products else "the price book is empty; add products with "
          "`ordertasks products import FILE.csv`", file=out)
    return 0
