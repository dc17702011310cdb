"""Where the relay finds the outbox database (``ORDERTASKS_OUTBOX_URL``, else the catalog's
``[outbox] database_url``), the ``ordertasks outbox`` and ``relay`` commands, and the
maintenance entry point relaying when an outbox database is named."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import requests

from ordertasks.cli import main as ordertasks
from ordertasks.handlers.config import CatalogError, Settings, load_catalog
from ordertasks.handlers.errors import ConfigurationError
from ordertasks.producer.library import OrderTasks
from ordertasks.producer.maintenance import Maintenance, maintenance_verifier
from ordertasks.producer.outbox.relay import outbox_database_url
from tests.functions.conftest import serve_flask
from tests.outbox.conftest import ShopDatabase, order, task_names
from tests.producer.conftest import CATALOG, Emulator, make_settings
from tests.support.issuer import TestIssuer
from tests.support.servers import free_port

SECRET_URL = "postgresql://shop:s3cret@db.internal:5432/shop"


def catalog_with(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "tasks.toml"
    path.write_text(f'extends = "builtin"\n\n{table}\n', encoding="utf-8")
    return path


def test_the_url_comes_from_ordertasks_outbox_url_and_stays_out_of_repr() -> None:
    settings = Settings.from_env({"ORDERTASKS_OUTBOX_URL": SECRET_URL})
    assert settings.store.outbox_url == SECRET_URL and outbox_database_url(settings) == SECRET_URL
    assert "s3cret" not in repr(settings)
    assert outbox_database_url(Settings.from_env({})) is None


def test_the_catalog_may_name_the_outbox_database_through_a_variable(tmp_path: Path) -> None:
    path = catalog_with(tmp_path, '[outbox]\ndatabase_url = "${SHOP_DATABASE_URL}"')
    assert load_catalog(path).outbox_database_url == "${SHOP_DATABASE_URL}"
    env = {"ORDERTASKS_CONFIG": str(path), "SHOP_DATABASE_URL": "sqlite:///shop.db"}
    assert outbox_database_url(Settings.from_env(env)) == "sqlite:///shop.db"
    assert outbox_database_url(Settings.from_env({**env, "ORDERTASKS_OUTBOX_URL": SECRET_URL})) == SECRET_URL
    with pytest.raises(ConfigurationError, match=r"\[outbox\] database_url uses \$\{SHOP_DATABASE_URL\}"):
        outbox_database_url(Settings.from_env({"ORDERTASKS_CONFIG": str(path)}))


@pytest.mark.parametrize("table, problem", [('[outbox]\ndatabse_url = "x"', "unknown setting 'databse_url'"),
                                            ('[outbox]\ndatabase_url = ""', "non-empty string")])
def test_a_wrong_outbox_table_names_file_and_line(tmp_path: Path, table: str, problem: str) -> None:
    with pytest.raises(CatalogError, match=rf"tasks.toml:\d+: \[outbox\] .*{problem}"):
        load_catalog(catalog_with(tmp_path, table))


def test_outbox_init_twice_then_status_and_sql(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    assert ordertasks(["outbox", "init", "--database-url", url]) == 0
    assert ordertasks(["outbox", "init", "--database-url", url]) == 0
    assert ordertasks(["outbox", "status", "--database-url", url]) == 0
    assert "outbox: 0 waiting, 0 relayed, 0 refused" in capsys.readouterr().out
    assert ordertasks(["outbox", "sql", "--dialect", "sqlite"]) == 0
    fresh = sqlite3.connect(tmp_path / "migrated.db")
    fresh.executescript(capsys.readouterr().out)        # what a migration tool would run
    assert {"ordertasks_outbox", "ordertasks_outbox_effects"} <= {
        name for (name,) in fresh.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    fresh.close()


def test_relay_without_an_outbox_database_says_how_to_name_one(monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("ORDERTASKS_OUTBOX_URL", raising=False)
    monkeypatch.setenv("ORDERTASKS_CONFIG", str(CATALOG))
    assert ordertasks(["relay"]) == 2
    assert "set ORDERTASKS_OUTBOX_URL" in capsys.readouterr().err


def test_the_maintenance_reconcile_relays_what_a_crash_left_in_the_outbox(
        tmp_path: Path, emulator: Emulator, shop: ShopDatabase) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    catalog = load_catalog(CATALOG)
    issuer = TestIssuer(audience=url, email=catalog.service_account_email("scheduler"))
    settings = make_settings(tmp_path, emulator.host, oidc={"verify": True, "certs_url": issuer.certs_url},
                             tasks={"maintenance_url": url}, store={"outbox_url": shop.url})
    tasks = OrderTasks.from_settings(settings)
    server, _ = serve_flask(Maintenance(tasks, maintenance_verifier(settings)), port)
    try:
        with shop.transaction("driver") as transaction:
            tasks.schedule(order("ord_left_behind"), transaction=transaction)
        answer = requests.post(url, json={"action": "reconcile"}, timeout=60,
                               headers={"Authorization": f"Bearer {issuer.token()}"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["relay"]["relayed"] == 1 and answer.json()["relay"]["created"] == len(tasks.kinds)
        assert len(task_names(tasks)) == len(tasks.kinds)
    finally:
        server.shutdown()  # type: ignore[attr-defined]
        tasks.close()
        issuer.stop()
