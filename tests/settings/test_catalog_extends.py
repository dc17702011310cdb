"""A catalog that extends another: ``extends = "builtin"`` or a path, ``drop = [...]``, tables
merged key by key; errors still name the file and line where the offending table was written.

Nothing here lists the shipped kinds: what a shop's catalog should hold is derived from
``load_catalog`` of the shipped file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ordertasks.handlers.config import (DEFAULT_CATALOG, MAX_EXTENDS_DEPTH, AuditConfig, CatalogError, QueueConfig,
                                        catalog_document, load_catalog)
from ordertasks.handlers.errors import ConfigurationError
from ordertasks.handlers.registry import KindRegistry
from ordertasks.handlers.settings import Settings
from tests.docs.blocks import REPO, blocks_of

WAREHOUSE_KIND, WAREHOUSE_QUEUE = "notify_warehouse", "ordertasks-warehouse"
SHOP = """\
extends = "builtin"
drop = ["kinds.notify_warehouse", "queues.ordertasks-warehouse", "checkout"]

[queues.ordertasks-loyalty]
max_attempts = 3

[kinds.sync_crm]
queue = "ordertasks-loyalty"
delay_seconds = 0

[kinds.sync_crm.webhook]
url = "https://crm.example.com/orders"
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def line_of(path: Path, pattern: str, after: str = "") -> int:
    """1-based line of the first line matching ``pattern`` at or after the line holding ``after``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(n for n, line in enumerate(lines) if after in line) if after else 0
    return next(n for n, line in enumerate(lines[start:], start + 1) if re.search(pattern, line))


def refusal(path: Path) -> str:
    with pytest.raises(CatalogError) as raised:
        load_catalog(path)
    message = str(raised.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def shipped() -> object:
    catalog = load_catalog(DEFAULT_CATALOG)
    assert WAREHOUSE_KIND in catalog.kinds and WAREHOUSE_QUEUE in catalog.queues and catalog.checkout
    return catalog


def test_extends_builtin_adds_a_kind_and_drops_the_warehouse_and_the_checkout(tmp_path: Path, shipped) -> None:
    path = write(tmp_path / "shop.toml", SHOP)

    catalog = load_catalog(path)

    assert set(catalog.kinds) == set(shipped.kinds) - {WAREHOUSE_KIND} | {"sync_crm"}
    assert set(catalog.queues) == set(shipped.queues) - {WAREHOUSE_QUEUE} | {"ordertasks-loyalty"}
    assert catalog.queues["ordertasks-loyalty"] == QueueConfig("ordertasks-loyalty", max_attempts=3)
    assert not catalog.checkout
    assert catalog.source == str(path)
    assert (catalog.project, catalog.service_accounts, catalog.handler, catalog.auditor) == (
        shipped.project, shipped.service_accounts, shipped.handler, shipped.auditor)
    inherited = catalog.kinds["send_confirmation_email"]
    assert (inherited.source, inherited.line) == (str(DEFAULT_CATALOG), shipped.kinds["send_confirmation_email"].line)
    own = catalog.kinds["sync_crm"]
    assert (own.source, own.line) == (str(path), line_of(path, r"^\[kinds\.sync_crm\]"))


def test_a_redefined_inherited_table_is_merged_key_by_key(tmp_path: Path, shipped) -> None:
    path = write(tmp_path / "shop.toml", 'extends = "builtin"\n\n[queues.ordertasks-warehouse]\nmax_attempts = 2\n\n'
                                         '[kinds.record_analytics]\ndelay_seconds = 1\n\n[handler]\nmemory = "1Gi"\n')

    catalog = load_catalog(path)

    expected_queue = shipped.queues[WAREHOUSE_QUEUE].__dict__ | {"max_attempts": 2}
    assert catalog.queues[WAREHOUSE_QUEUE].__dict__ == expected_queue
    assert catalog.kinds["record_analytics"].delay_seconds == 1
    assert catalog.kinds["record_analytics"].queue == shipped.kinds["record_analytics"].queue
    assert catalog.kinds["record_analytics"].source == str(path)
    assert catalog.handler == {**shipped.handler, "memory": "1Gi"}


def test_drop_of_a_key_gives_back_its_default(tmp_path: Path, shipped) -> None:
    write(tmp_path / "base.toml", 'extends = "builtin"\n\n[auditor]\nrecreations = 7\n')
    path = write(tmp_path / "shop.toml", 'extends = "base.toml"\ndrop = ["handler.memory", "auditor.recreations"]\n')

    catalog = load_catalog(path)

    assert "memory" in shipped.handler and catalog.handler == {k: v for k, v in shipped.handler.items() if k != "memory"}
    assert load_catalog(tmp_path / "base.toml").auditor.recreations == 7
    assert catalog.auditor == AuditConfig(margin_seconds=shipped.auditor.margin_seconds)


def test_drop_then_redefine_replaces_the_table_whole(tmp_path: Path) -> None:
    path = write(tmp_path / "shop.toml", 'extends = "builtin"\ndrop = ["queues.ordertasks-warehouse"]\n\n'
                                         '[queues.ordertasks-warehouse]\nmax_attempts = 2\n')

    assert load_catalog(path).queues[WAREHOUSE_QUEUE] == QueueConfig(WAREHOUSE_QUEUE, max_attempts=2)


def test_drop_of_a_path_the_base_lacks_names_it_and_the_likely_one(tmp_path: Path) -> None:
    path = write(tmp_path / "shop.toml", 'extends = "builtin"\ndrop = ["kinds.notify_warehous"]\n')

    message = refusal(path)

    assert message.startswith(f"{path}:2: drop: 'kinds.notify_warehous' is not in the catalog it extends "
                              f"({DEFAULT_CATALOG})"), message
    assert "did you mean 'kinds.notify_warehouse'?" in message


@pytest.mark.parametrize("drop, problem", [("'checkout'", "must be a list"), ("[1]", "must be a list"),
                                           ("[]", None)])
def test_drop_must_be_a_list_of_paths(tmp_path: Path, drop: str, problem: str | None) -> None:
    path = write(tmp_path / "shop.toml", f'extends = "builtin"\ndrop = {drop}\n')
    if problem is None:
        assert load_catalog(path).kinds == load_catalog(DEFAULT_CATALOG).kinds
    else:
        assert refusal(path).startswith(f"{path}:2: drop {problem}")


def test_drop_without_extends_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "shop.toml", 'drop = ["checkout"]\n\n[queues.q]\n')

    assert refusal(path).startswith(f"{path}:1: drop needs extends")


def test_a_cycle_is_refused_naming_the_files(tmp_path: Path) -> None:
    first = write(tmp_path / "a.toml", 'extends = "b.toml"\n')
    second = write(tmp_path / "b.toml", '# b\nextends = "a.toml"\n')

    message = refusal(first)

    assert message.startswith(f"{second}:2: extends = 'a.toml' makes a cycle ({first} -> {second} -> {first})")
    assert refusal(write(tmp_path / "self.toml", 'extends = "./self.toml"\n')).count("makes a cycle") == 1


def test_the_chain_is_bounded(tmp_path: Path) -> None:
    write(tmp_path / "c0.toml", 'extends = "builtin"\n')
    for number in range(1, MAX_EXTENDS_DEPTH + 1):
        write(tmp_path / f"c{number}.toml", f'extends = "c{number - 1}.toml"\n')

    assert len(load_catalog(tmp_path / f"c{MAX_EXTENDS_DEPTH - 2}.toml").kinds) > 0
    assert f"longer than {MAX_EXTENDS_DEPTH} files" in refusal(tmp_path / f"c{MAX_EXTENDS_DEPTH}.toml")


@pytest.mark.parametrize("extends, problem", [('"nowhere.toml"', "no catalog file at {dir}/nowhere.toml"),
                                              ("3", 'must be "builtin"'), ('""', 'must be "builtin"')])
def test_a_bad_extends_is_one_line_naming_the_file_and_the_key(tmp_path: Path, extends: str, problem: str) -> None:
    path = write(tmp_path / "shop.toml", f"# the shop\nextends = {extends}\n")

    message = refusal(path)

    assert message.startswith(f"{path}:2: extends = "), message
    assert problem.format(dir=tmp_path) in message


def test_a_base_that_is_not_toml_is_named(tmp_path: Path) -> None:
    base = write(tmp_path / "base.toml", "[queues\n")
    path = write(tmp_path / "shop.toml", 'extends = "base.toml"\n')

    assert refusal(path).startswith(f"{base}: not valid TOML")


def test_an_error_in_an_inherited_table_names_the_base_file_and_line(tmp_path: Path, shipped) -> None:
    # The warehouse queue dropped, its kind kept: the kind, written in the shipped file, is wrong.
    path = write(tmp_path / "shop.toml", 'extends = "builtin"\ndrop = ["queues.ordertasks-warehouse"]\n')

    message = refusal(path)

    queue_line = line_of(DEFAULT_CATALOG, r"^queue\s*=", after=f"[kinds.{WAREHOUSE_KIND}]")
    assert message.startswith(f"{DEFAULT_CATALOG}:{queue_line}: [kinds.{WAREHOUSE_KIND}] unknown queue "
                              f"'{WAREHOUSE_QUEUE}'"), message


def test_an_error_in_a_redefined_key_names_the_extending_file(tmp_path: Path) -> None:
    path = write(tmp_path / "shop.toml", 'extends = "builtin"\n\n[kinds.request_review]\ndelay_seconds = 2592001\n')

    assert refusal(path).startswith(f"{path}:4: [kinds.request_review] delay_seconds=2592001.0 is over")


def test_extends_a_path_relative_to_the_extending_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       shipped) -> None:
    write(tmp_path / "base" / "company.toml", SHOP.replace('"checkout"]', '"checkout", "kinds.request_review"]'))
    shop = write(tmp_path / "shops" / "eu" / "tasks.toml",
                 'extends = "../../base/company.toml"\n\n[project]\nregion = "europe-west3"\n')
    monkeypatch.chdir(tmp_path / "shops")

    catalog = load_catalog(shop)

    assert set(catalog.kinds) == set(shipped.kinds) - {WAREHOUSE_KIND, "request_review"} | {"sync_crm"}
    assert (catalog.region, catalog.project) == ("europe-west3", shipped.project)


def test_the_document_holds_the_bases_tables_and_no_directives(tmp_path: Path) -> None:
    path = write(tmp_path / "shop.toml", SHOP + '\n[cloud]\nsmtp_host = "smtp.shop.example"\n')
    shipped = catalog_document(DEFAULT_CATALOG)

    document = catalog_document(path)

    assert document["handler"] == shipped["handler"] and document["project"] == shipped["project"]
    assert document["cloud"] == {"smtp_host": "smtp.shop.example"}
    assert "checkout" not in document and WAREHOUSE_KIND not in document["kinds"]
    assert "extends" not in document and "drop" not in document
    assert catalog_document(DEFAULT_CATALOG) == shipped      # the base is never changed in place


def test_the_registry_names_the_base_file_of_an_inherited_kind(tmp_path: Path) -> None:
    base = write(tmp_path / "base.toml", 'extends = "builtin"\n\n[kinds.award_points]\nqueue = "ordertasks-email"\n'
                                         'delay_seconds = 0\neffect = "shop_code_not_installed:award"\n')
    shop = write(tmp_path / "shop.toml", 'extends = "base.toml"\n')

    with pytest.raises(CatalogError) as raised:
        KindRegistry.from_catalog(load_catalog(shop))

    assert str(raised.value).startswith(f"{base}:3: [kinds.award_points] effect 'shop_code_not_installed:award'")


def test_a_token_env_a_base_file_names_is_checked(tmp_path: Path) -> None:
    write(tmp_path / "base.toml", SHOP.replace('"https://crm.example.com/orders"\n',
                                               '"https://crm.example.com/orders"\ntoken_env = "CRM_SECRET"\n'))
    shop = write(tmp_path / "shop.toml", 'extends = "base.toml"\n')

    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({"ORDERTASKS_CONFIG": str(shop), "CRM_SECRET": "tok_123\n"})

    assert str(raised.value).startswith("CRM_SECRET ends with a line break")


def doc_example() -> str:
    """The TOML block of docs/kinds.md's section on extending the shipped catalog."""
    doc = REPO / "docs" / "kinds.md"
    section = line_of(doc, r"^## .*extends the shipped one")
    return next(b.text for b in blocks_of(doc) if b.lang == "toml" and b.line > section)


def test_the_docs_example_is_a_valid_catalog(tmp_path: Path, shipped) -> None:
    catalog = load_catalog(write(tmp_path / "tasks.toml", doc_example()))

    assert set(catalog.kinds) == set(shipped.kinds) - {WAREHOUSE_KIND} | {"award_loyalty_points", "sync_crm"}
    assert set(catalog.queues) == set(shipped.queues) - {WAREHOUSE_QUEUE} | {"ordertasks-loyalty"}
    assert not catalog.checkout
