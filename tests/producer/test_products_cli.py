"""``ordertasks products import|list`` as a person runs them: a subprocess on a data directory."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from ordertasks.infra.config import REPO_ROOT
from ordertasks.producer.pricebook_sqlite import SqlitePriceBook
from ordertasks.producer.products import DEMO_CATALOGUE, CatalogueFileError, read_products


def _run(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ORDERTASKS_BACKEND": "local", "ORDERTASKS_DATA_DIR": str(tmp)}
    return subprocess.run([sys.executable, "-m", "cli", "products", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)


def test_import_then_list(tmp_path: Path) -> None:
    csv = tmp_path / "products.csv"
    csv.write_text("sku,name,active,EUR,GBP\nMUG-1,Mug,true,9.50,8.00\nOLD-0,\"Old, retired\",false,1.00,\n")
    done = _run(tmp_path, "import", str(csv))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"imported 2 product(s) from {csv}"
    listed = _run(tmp_path, "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "SKU    NAME          PRICES             TAX       ACTIVE",
        "MUG-1  Mug           EUR 9.50 GBP 8.00  standard  yes",
        "OLD-0  Old, retired  EUR 1.00           standard  no",
    ]
    book = SqlitePriceBook(tmp_path / "ordertasks.db")   # the order store's file
    assert book.get_products(["MUG-1"])["MUG-1"].prices == {"EUR": Decimal("9.50"), "GBP": Decimal("8.00")}


def test_if_empty_seeds_once_and_keeps_the_shops_products(tmp_path: Path) -> None:
    assert _run(tmp_path, "import", "--if-empty", str(DEMO_CATALOGUE)).returncode == 0
    mine = tmp_path / "mine.csv"
    mine.write_text("sku,name,EUR\nBOOK-1,My own book,25.00\n")
    assert _run(tmp_path, "import", str(mine)).returncode == 0
    again = _run(tmp_path, "import", "--if-empty", str(DEMO_CATALOGUE))
    assert again.returncode == 0 and "already has products; nothing imported" in again.stdout
    book = SqlitePriceBook(tmp_path / "ordertasks.db")
    assert book.get_products(["BOOK-1"])["BOOK-1"].name == "My own book"
    assert len(book.list_products()) == len(read_products(DEMO_CATALOGUE.read_text()))


def test_an_empty_book_says_how_to_fill_it(tmp_path: Path) -> None:
    header_only = tmp_path / "products.csv"
    header_only.write_text("sku,name,EUR\n")
    assert _run(tmp_path, "import", str(header_only)).returncode == 0
    listed = _run(tmp_path, "list")
    assert listed.returncode == 0
    assert "ordertasks products import FILE.csv" in listed.stdout


def test_a_data_directory_without_data_is_refused_with_how_to_fill_it(tmp_path: Path) -> None:
    listed = _run(tmp_path / "mistyped", "list")
    assert listed.returncode == 1 and "Traceback" not in listed.stderr
    assert "ordertasks products import FILE.csv" in listed.stderr
    assert not (tmp_path / "mistyped" / "ordertasks.db").exists()


@pytest.mark.parametrize("text, message", [
    ("name,EUR\nMug,9.50\n", "products.csv:1: the header needs the column(s) sku"),
    ("sku,name\nMUG-1,Mug\n", "products.csv:1: no price column"),
    ("sku,name,EUR,price\nMUG-1,Mug,1,2\n", "products.csv:1: unknown column(s) price"),
    ("sku,name,EUR\nMUG-1,Mug,9.50\nTEA-7,Tea,abc\n", "products.csv:3: the EUR price 'abc' is not a decimal"),
    ("sku,name,EUR\nMUG-1,Mug,9.50\nMUG-1,Mug,9.60\n", "products.csv:3: sku 'MUG-1' appears twice"),
    ("sku,name,EUR\nMUG 1,Mug,9.50\n", "products.csv:2: sku 'MUG 1' must be"),
    ("sku,name,EUR\nMUG-1,Mug,-1\n", "products.csv:2: MUG-1: the EUR price must be a positive amount"),
    ("sku,name,EUR\nMUG-1,Mug,\n", "products.csv:2: MUG-1: needs a price in at least one currency"),
    ("sku,name,active,EUR\nMUG-1,Mug,maybe,1\n", "products.csv:2: active must be true or false"),
])
def test_a_bad_file_names_its_line_and_writes_nothing(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(CatalogueFileError) as caught:
        read_products(text, "products.csv")
    assert str(caught.value).startswith(message)


def test_the_command_reports_a_bad_file_without_a_traceback(tmp_path: Path) -> None:
    csv = tmp_path / "products.csv"
    csv.write_text("sku,name,EUR\nMUG-1,Mug,9.50\nTEA-7,Tea,abc\n")
    done = _run(tmp_path, "import", str(csv))
    assert done.returncode == 1
    assert done.stderr.strip() == f"ordertasks products: {csv}:3: the EUR price 'abc' is not a decimal such as 19.50"
    assert SqlitePriceBook(tmp_path / "ordertasks.db").list_products() == []
    missing = _run(tmp_path, "import", str(tmp_path / "nope.csv"))
    assert missing.returncode == 1 and "Traceback" not in missing.stderr and "nope.csv" in missing.stderr
