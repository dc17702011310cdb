"""What ``transaction=`` accepts and what it refuses, and the URLs the relay opens: a refusal
names what to pass instead, and writes nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ordertasks.handlers.errors import ConfigurationError
from ordertasks.producer.outbox import UnsupportedTransaction, borrowed, open_database
from tests.outbox.postgres import PostgresCluster, postgres_cluster  # noqa: F401 - the session fixture


def test_an_engine_is_refused_for_it_holds_no_transaction(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    with pytest.raises(UnsupportedTransaction, match="engine.begin"):
        borrowed(engine)
    engine.dispose()


def test_an_autocommit_sqlalchemy_connection_is_refused(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        with pytest.raises(UnsupportedTransaction, match="AUTOCOMMIT"):
            borrowed(conn)
    engine.dispose()


def test_an_autocommit_sqlite3_connection_outside_begin_is_refused_and_inside_accepted(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "shop.db", isolation_level=None)
    with pytest.raises(UnsupportedTransaction, match="BEGIN"):
        borrowed(conn)
    conn.execute("BEGIN")
    assert borrowed(conn).dialect == "sqlite"
    conn.close()


def test_an_autocommit_psycopg_connection_is_accepted_only_inside_a_transaction_block(
        postgres_cluster: PostgresCluster) -> None:  # noqa: F811
    import psycopg

    with psycopg.connect(postgres_cluster.url("postgres"), autocommit=True) as conn:
        with pytest.raises(UnsupportedTransaction, match="conn.transaction"):
            borrowed(conn)
        with conn.transaction():
            assert borrowed(conn).dialect == "postgresql"


def test_anything_else_is_refused_with_what_to_pass() -> None:
    with pytest.raises(UnsupportedTransaction, match="SQLAlchemy Connection or Session"):
        borrowed(object())


@pytest.mark.parametrize("url", ["mysql://shop@db/shop", "sqlite://", "shop.db", "postgresql://"])
def test_a_url_the_relay_cannot_open_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="postgresql://user:password@host:port/database"):
        open_database(url)


def test_a_password_in_the_url_is_never_in_the_error() -> None:
    with pytest.raises(ConfigurationError) as refused:
        open_database("mysql://shop:s3cret@db/shop")
    assert "s3cret" not in str(refused.value)


def test_an_unreachable_outbox_database_is_a_dependency_outage_of_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    from ordertasks.cli import main as ordertasks
    from ordertasks.handlers.errors import DependencyUnavailable
    from tests.support.servers import free_port

    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/shop"
    with pytest.raises(DependencyUnavailable, match="the outbox database is unavailable"):
        open_database(nowhere)
    assert ordertasks(["outbox", "status", "--database-url", nowhere]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ordertasks outbox: the outbox database is unavailable") and err.count("\n") == 1
