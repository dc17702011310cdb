"""The outbox backend for each SQL dialect, and the DDL a migration runs."""

from __future__ import annotations

from ordertasks.producer.outbox.ports import Database, ShopOutbox
from ordertasks.producer.outbox.postgres import PostgresOutbox
from ordertasks.producer.outbox.rows import EFFECTS_TABLE, ORDERS_TABLE
from ordertasks.producer.outbox.sqlite import SqliteOutbox

BACKENDS: dict[str, type[PostgresOutbox] | type[SqliteOutbox]] = {"postgresql": PostgresOutbox, "sqlite": SqliteOutbox}


def outbox_for(dialect: str) -> ShopOutbox:
    """The ``ShopOutbox`` of ``dialect`` (``postgresql`` or ``sqlite``)."""
    try:
        return BACKENDS[dialect]()
    except KeyError:
        raise ValueError(f"the outbox lives in PostgreSQL or SQLite, not {dialect!r}") from None


def outbox_ddl(dialect: str) -> list[str]:
    """The statements that create the outbox tables and index in ``dialect``, for a migration
    (Alembic: ``op.get_bind().dialect.name``; Django: ``schema_editor.connection.vendor``)."""
    return outbox_for(dialect).ddl()


def outbox_drop() -> list[str]:
    """The statements that remove the outbox tables (a migration's way back)."""
    return [f"DROP TABLE IF EXISTS {EFFECTS_TABLE}", f"DROP TABLE IF EXISTS {ORDERS_TABLE}"]


def create_tables(database: Database) -> None:
    """Create the outbox tables in ``database`` if they are not there (``ordertasks outbox init``)."""
    with database.transaction() as sql:
        for statement in outbox_ddl(database.dialect):
            sql.execute(statement)
