"""Which catalog a process reads: ``--config``, else ``ORDERTASKS_CONFIG``, else the shipped one;
always absolute, a relative path taken from the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from ordertasks.handlers.config import DEFAULT_CATALOG, CatalogError, Settings, load_catalog
from ordertasks.handlers.settings import configured_catalog_path


def test_a_relative_variable_is_taken_from_the_working_directory(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    assert Settings.from_env({"ORDERTASKS_CONFIG": "shop.toml"}).catalog_path == tmp_path / "shop.toml"


def test_the_flag_wins_then_the_variable_then_the_shipped_catalog(tmp_path: Path) -> None:
    variable = {"ORDERTASKS_CONFIG": str(tmp_path / "env.toml")}

    assert configured_catalog_path(tmp_path / "flag.toml", variable) == tmp_path / "flag.toml"
    assert configured_catalog_path(None, variable) == tmp_path / "env.toml"
    assert configured_catalog_path(None, {}) == DEFAULT_CATALOG


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.mkdir(), lambda p: p.write_bytes(b"\xff\xfe[x]")],
                         ids=["missing", "a directory", "not UTF-8"])
def test_an_unreadable_catalog_is_a_catalog_error_naming_it(make: object, tmp_path: Path) -> None:
    path = tmp_path / "shop.toml"
    make(path)  # type: ignore[operator]

    with pytest.raises(CatalogError, match=f"^{path}: cannot read the catalog .*ORDERTASKS_CONFIG or --config"):
        load_catalog(path)
