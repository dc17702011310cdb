"""How many shard documents a day's analytics total is spread over (``[analytics]``): from the
expected peak by default, so the catalog as shipped keeps each shard document under
Firestore's ~1 write/s at 50 orders/s (issue 33); an explicit ``shards`` wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from ordertasks.handlers.config import SHARD_WRITES_PER_SECOND, CatalogError, load_catalog
from ordertasks.infra.config import DEFAULT_CATALOG

SHIPPED = "peak_orders_per_second = 50"


def catalog_with(tmp_path: Path, line: str) -> Path:
    """The shipped catalog with its ``[analytics]`` setting replaced by ``line``."""
    text = DEFAULT_CATALOG.read_text(encoding="utf-8")
    assert SHIPPED in text
    path = tmp_path / "tasks.toml"
    path.write_text(text.replace(SHIPPED, line), encoding="utf-8")
    return path


def test_the_shipped_catalog_keeps_each_shard_at_half_a_write_per_second_at_50_orders() -> None:
    shards = load_catalog(DEFAULT_CATALOG).analytics_shards
    assert shards == 100 and 50 / shards <= SHARD_WRITES_PER_SECOND


@pytest.mark.parametrize("line, shards", [("peak_orders_per_second = 4", 8), ("peak_orders_per_second = 12.2", 25),
                                          ("peak_orders_per_second = 0.1", 1), ("", 100)])
def test_the_shard_count_follows_the_peak(tmp_path: Path, line: str, shards: int) -> None:
    assert load_catalog(catalog_with(tmp_path, line)).analytics_shards == shards


def test_an_explicit_shard_count_wins(tmp_path: Path) -> None:
    path = catalog_with(tmp_path, "shards = 8\npeak_orders_per_second = 50")
    assert load_catalog(path).analytics_shards == 8


@pytest.mark.parametrize("line, says", [("shards = 0", "whole number between 1 and 10000"),
                                        ('shards = "8"', "whole number between 1 and 10000"),
                                        ("peak_orders_per_second = 0", "orders per second above 0"),
                                        ("peak_orders_per_second = true", "orders per second above 0")])
def test_a_bad_setting_is_refused_naming_the_table(tmp_path: Path, line: str, says: str) -> None:
    with pytest.raises(CatalogError) as caught:
        load_catalog(catalog_with(tmp_path, line))
    assert "[analytics]" in str(caught.value) and says in str(caught.value)
