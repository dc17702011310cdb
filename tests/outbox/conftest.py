"""Fixtures of the transactional-outbox tests: a shop database (PostgreSQL on the session's
private cluster, or SQLite in a file) reached through each API a shop holds a transaction in
(SQLAlchemy ``Connection``, SQLAlchemy ``Session``, the raw driver connection), the real Cloud
Tasks emulator with its queues paused, and ``OrderTasks`` over SQLite with
``store.outbox_url`` naming the shop database.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ordertasks.producer import wiring
from ordertasks.producer.library import OrderTasks
from ordertasks.producer.outbox import OutboxCounts, create_tables, open_database, outbox_for
from tests.library.test_order_tasks import order as order   # noqa: F401 - the tests' order snapshot
from tests.outbox.postgres import PostgresCluster, postgres_cluster  # noqa: F401 - the session fixture
from tests.producer.conftest import CATALOG, Emulator, list_all_tasks, make_settings, pause_all

APIS = ["sqlalchemy-connection", "sqlalchemy-session", "driver"]
DIALECTS = ["postgresql", "sqlite"]


@dataclass
class ShopDatabase:
    """The shop's database: its URL (SQLAlchemy's spelling, which the relay reads too)."""

    dialect: str
    url: str

    def driver_connection(self) -> Any:
        """A raw psycopg 3 or sqlite3 connection, not in autocommit mode."""
        if self.dialect == "sqlite":
            return sqlite3.connect(self.url.removeprefix("sqlite:///"))
        import psycopg

        return psycopg.connect(self.url.replace("+psycopg", ""))

    @contextmanager
    def transaction(self, api: str, commit: bool = True) -> Iterator[Any]:
        """The object a shop passes as ``transaction=`` through ``api``; committed (or rolled
        back) when the block ends."""
        if api == "driver":
            conn = self.driver_connection()
            try:
                yield conn
                conn.commit() if commit else conn.rollback()
            finally:
                conn.close()
            return
        from sqlalchemy import create_engine
        from sqlalchemy.orm import Session

        engine = create_engine(self.url)
        try:
            with (engine.connect() if api == "sqlalchemy-connection" else Session(engine)) as held:
                yield held
                held.commit() if commit else held.rollback()
        finally:
            engine.dispose()

    def counts(self) -> OutboxCounts:
        """Waiting, relayed and refused orders in the outbox."""
        database = open_database(self.url)
        try:
            with database.transaction() as sql:
                return outbox_for(database.dialect).counts(sql)
        finally:
            database.close()


def shop_database(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> ShopDatabase:
    """An empty shop database of ``dialect`` with the outbox tables (``ordertasks outbox init``'s work)."""
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'shop.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        url = cluster.new_database().replace("postgresql://", "postgresql+psycopg://")
    database = open_database(url)
    try:
        create_tables(database)
    finally:
        database.close()
    return ShopDatabase(dialect, url)


@pytest.fixture(params=DIALECTS)
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> ShopDatabase:
    return shop_database(request.param, tmp_path, request)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    """The Cloud Tasks emulator with the catalog's queues paused: tasks stay to be counted."""
    running = Emulator(tmp_path).start()
    try:
        settings = make_settings(tmp_path, running.host)
        pause_all(wiring.tasks_client(settings), settings.catalog())
        yield running
    finally:
        running.stop()


@pytest.fixture
def tasks(tmp_path: Path, emulator: Emulator, shop: ShopDatabase) -> Iterator[OrderTasks]:
    settings = make_settings(tmp_path, emulator.host, store={"outbox_url": shop.url})
    with OrderTasks.from_settings(settings) as library:
        yield library


def task_names(tasks: OrderTasks) -> list[str]:
    """Every task the emulator holds in the catalog's queues."""
    return [t.name for t in list_all_tasks(tasks.enqueuer.client, tasks.catalog)]


def environment(tmp_path: Path, emulator: Emulator, shop: ShopDatabase) -> dict[str, str]:
    """``ORDERTASKS_*`` for a subprocess: the same settings as ``make_settings`` gives the test."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERTASKS_", "CLOUD_TASKS_"))}
    return {**base, "ORDERTASKS_CONFIG": str(CATALOG), "ORDERTASKS_DATA_DIR": str(tmp_path),
            "ORDERTASKS_SQLITE_PATH": str(tmp_path / "orders.db"), "CLOUD_TASKS_EMULATOR_HOST": emulator.host,
            "ORDERTASKS_HANDLER_URL": "http://127.0.0.1:9/tasks", "ORDERTASKS_OIDC_VERIFY": "false",
            "ORDERTASKS_ENQUEUE_TIMEOUT": "5", "ORDERTASKS_OUTBOX_URL": shop.url}
