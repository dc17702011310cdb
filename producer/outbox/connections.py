"""SQL on the connections ordertasks meets: the shop's, borrowed inside its transaction, and
the relay's own, opened from a database URL.

``borrowed(transaction)`` takes what a shop's checkout holds while its transaction is open:

| given | written through | refused when |
|---|---|---|
| SQLAlchemy ``Connection`` | ``exec_driver_sql`` (the connection's transaction) | ``AUTOCOMMIT`` isolation |
| SQLAlchemy ``Session`` (or ``scoped_session``) | ``session.connection()`` | – |
| Django's ``django.db.connection`` | its DB-API connection (psycopg 3 or sqlite3) | outside ``transaction.atomic()`` |
| psycopg 3 ``Connection`` | its cursor | autocommit, outside ``with conn.transaction()`` |
| ``sqlite3.Connection`` | its cursor | autocommit (``isolation_level=None``) outside ``BEGIN`` |

A SQLAlchemy ``Engine`` is refused: it holds no transaction of the caller's. Nothing here
commits or rolls back a borrowed connection: the caller's transaction decides.

asyncio connections are ``AsyncOrderTasks.schedule``'s (``outbox.writer.add_async``), and the
synchronous ``borrowed`` refuses them saying so:

| given | written through | refused when |
|---|---|---|
| SQLAlchemy ``AsyncConnection``/``AsyncSession`` | ``run_sync``, as its sync facade above | ``AsyncEngine``; as above |
| psycopg 3 ``AsyncConnection`` | ``AsyncDbApiSql``: ``await cursor.execute`` | as psycopg 3 above |

``open_database(url)`` opens the relay's connection: ``postgresql://…`` (also ``postgres://``
and SQLAlchemy's ``postgresql+psycopg://``; libpq's URL, so ``?host=/socket/dir`` works) with
psycopg 3, or ``sqlite:///relative.db`` / ``sqlite:////absolute.db`` with ``sqlite3``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ordertasks.handlers.errors import ConfigurationError, DependencyUnavailable
from ordertasks.producer.outbox.ports import Row, Sql, UnsupportedTransaction

DIALECTS = ("postgresql", "sqlite")
ACCEPTED = ("a SQLAlchemy Connection or Session, a psycopg 3 connection or a sqlite3 connection, "
            "inside the transaction that stores your order")
URL_HINT = "give postgresql://user:password@host:port/database or sqlite:///path/to/shop.db"
ASYNCIO_HINT = "await AsyncOrderTasks.schedule(order, transaction=…) writes through it"


def driver_text(statement: str, dialect: str) -> str:
    """``statement`` in the DB-API driver's placeholders: ``?`` becomes ``%s`` for psycopg."""
    return statement.replace("?", "%s") if dialect == "postgresql" else statement


class DbApiSql:
    """``Sql`` over a DB-API connection (psycopg 3 or sqlite3): ``?`` becomes ``%s`` for psycopg."""

    def __init__(self, connection: Any, dialect: str) -> None:
        self.connection, self.dialect = connection, dialect

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        """One statement; its rows."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(driver_text(statement, self.dialect), tuple(params))
            return [tuple(r) for r in cursor.fetchall()] if cursor.description else []
        finally:
            cursor.close()

    def executemany(self, statement: str, params: Sequence[Sequence[Any]]) -> None:
        """One statement per parameter tuple."""
        if params:
            cursor = self.connection.cursor()
            try:
                cursor.executemany(driver_text(statement, self.dialect), [tuple(p) for p in params])
            finally:
                cursor.close()


class AsyncDbApiSql:
    """``AsyncSql`` over psycopg 3's ``AsyncConnection``: the same statements, awaited."""

    dialect = "postgresql"

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def execute(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        """One statement; its rows."""
        async with self.connection.cursor() as cursor:
            await cursor.execute(driver_text(statement, self.dialect), tuple(params))
            return [tuple(r) for r in await cursor.fetchall()] if cursor.description else []

    async def executemany(self, statement: str, params: Sequence[Sequence[Any]]) -> None:
        """One statement per parameter tuple."""
        if params:
            async with self.connection.cursor() as cursor:
                await cursor.executemany(driver_text(statement, self.dialect), [tuple(p) for p in params])


class AlchemySql:
    """``Sql`` over a SQLAlchemy ``Connection``: the driver's own SQL, in the connection's transaction."""

    def __init__(self, connection: Any) -> None:
        self.connection, self.dialect = connection, _dialect(connection.dialect.name)
        style = connection.dialect.paramstyle
        if style not in ("qmark", "format", "pyformat"):
            raise UnsupportedTransaction(f"the {connection.dialect.driver} driver's parameter style {style!r} is not "
                                         "supported: use psycopg (postgresql+psycopg://) or the standard sqlite3")
        self.marker = "?" if style == "qmark" else "%s"

    def _text(self, statement: str) -> str:
        return statement if self.marker == "?" else statement.replace("?", self.marker)

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        """One statement; its rows."""
        result = self.connection.exec_driver_sql(self._text(statement), tuple(params))
        return [tuple(r) for r in result.fetchall()] if result.returns_rows else []

    def executemany(self, statement: str, params: Sequence[Sequence[Any]]) -> None:
        """One statement per parameter tuple."""
        if params:
            self.connection.exec_driver_sql(self._text(statement), [tuple(p) for p in params])


def _dialect(name: str) -> str:
    if name not in DIALECTS:
        raise UnsupportedTransaction(f"the outbox lives in PostgreSQL or SQLite; this connection is {name}")
    return name


def borrowed(transaction: Any) -> Sql:
    """``Sql`` through the caller's open transaction (see the module docstring); else
    ``UnsupportedTransaction`` saying what to pass."""
    if asyncio_family(transaction):
        raise UnsupportedTransaction(f"transaction= got an asyncio {type(transaction).__name__}: {ASYNCIO_HINT}")
    family = type(transaction).__module__.split(".")[0]
    if family == "sqlalchemy":
        return _alchemy(transaction)
    if family == "psycopg":
        return _psycopg(transaction)
    if family == "django":
        return _django(transaction)
    if isinstance(transaction, sqlite3.Connection):
        if transaction.isolation_level is None and not transaction.in_transaction:
            raise UnsupportedTransaction("this sqlite3 connection is in autocommit mode and no transaction is open: "
                                         "run BEGIN first (or use the default isolation_level), so the outbox rows "
                                         "commit with your order")
        return DbApiSql(transaction, "sqlite")
    raise UnsupportedTransaction(f"transaction= got a {type(transaction).__name__}; pass {ACCEPTED}")


def _alchemy(transaction: Any) -> Sql:
    from sqlalchemy.engine import Connection, Engine

    if isinstance(transaction, Engine):
        raise UnsupportedTransaction("transaction= got an Engine, which holds no transaction of yours: pass the "
                                     "Connection of `with engine.begin() as conn:` or your Session")
    connection = transaction if isinstance(transaction, Connection) else transaction.connection()
    if _autocommit(connection):
        raise UnsupportedTransaction("this SQLAlchemy connection is in AUTOCOMMIT mode: the outbox rows would "
                                     "commit on their own; pass a connection in a transaction")
    return AlchemySql(connection)


def _autocommit(connection: Any) -> bool:
    """Whether a SQLAlchemy ``Connection`` runs in autocommit: its ``isolation_level`` option, or
    the engine's, as its DB-API connection shows it (``get_isolation_level()`` never says AUTOCOMMIT)."""
    raw = connection.connection.dbapi_connection
    return (connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
            or getattr(raw, "autocommit", None) is True
            or (isinstance(raw, sqlite3.Connection) and raw.isolation_level is None))


def _psycopg(transaction: Any) -> Sql:
    in_transaction(transaction, "with conn.transaction():")
    return DbApiSql(transaction, "postgresql")


def in_transaction(connection: Any, block: str) -> None:
    """Refuse a psycopg 3 connection in autocommit mode outside a transaction (``block`` opens one)."""
    from psycopg.pq import TransactionStatus

    if connection.autocommit and connection.info.transaction_status == TransactionStatus.IDLE:
        raise UnsupportedTransaction("this psycopg connection is in autocommit mode outside a transaction: "
                                     f"write inside `{block}` so the outbox rows commit with your order")


def asyncio_family(transaction: Any) -> str | None:
    """``"sqlalchemy"`` for SQLAlchemy's asyncio objects (``AsyncConnection``, ``AsyncSession``,
    ``AsyncEngine``), ``"psycopg"`` for psycopg 3's ``AsyncConnection``, else ``None``."""
    module = type(transaction).__module__
    if module.startswith("sqlalchemy.ext.asyncio"):
        return "sqlalchemy"
    if module.split(".")[0] == "psycopg":
        from psycopg import AsyncConnection

        return "psycopg" if isinstance(transaction, AsyncConnection) else None
    return None


def alchemy_asyncio(transaction: Any) -> Any:
    """The caller's SQLAlchemy ``AsyncConnection`` or ``AsyncSession`` (its ``run_sync`` writes
    through ``borrowed``); an ``AsyncEngine`` is refused."""
    from sqlalchemy.ext.asyncio import AsyncEngine

    if isinstance(transaction, AsyncEngine):
        raise UnsupportedTransaction("transaction= got an AsyncEngine, which holds no transaction of yours: pass the "
                                     "AsyncConnection of `async with engine.begin() as conn:` or your AsyncSession")
    return transaction


def borrowed_async(connection: Any) -> AsyncDbApiSql:
    """``AsyncSql`` through the caller's psycopg 3 ``AsyncConnection`` inside its open transaction."""
    in_transaction(connection, "async with conn.transaction():")
    return AsyncDbApiSql(connection)


def _django(connection: Any) -> Sql:
    """Django's ``django.db.connection`` inside ``transaction.atomic()``: its DB-API connection."""
    if not connection.in_atomic_block:
        raise UnsupportedTransaction("schedule inside `with transaction.atomic():`, so the outbox rows commit "
                                     "with your order")
    connection.ensure_connection()
    return borrowed(connection.connection)


class PostgresDatabase:
    """The relay's own PostgreSQL connection (autocommit; a ``transaction()`` per claim)."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ModuleNotFoundError as exc:
            raise ConfigurationError("a PostgreSQL outbox needs psycopg 3: pip install 'ordertasks[outbox]'") from exc
        self._unreachable = psycopg.OperationalError
        try:
            self.connection = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise unreachable(exc) from exc

    @contextmanager
    def transaction(self, immediate: bool = False) -> Iterator[Sql]:
        """``BEGIN`` … ``COMMIT`` (``ROLLBACK`` when the block raises); a lost server is
        ``DependencyUnavailable``."""
        try:
            with self.connection.transaction():
                yield DbApiSql(self.connection, self.dialect)
        except self._unreachable as exc:
            raise unreachable(exc) from exc

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


class SqliteDatabase:
    """The relay's own SQLite connection: explicit transactions, waiting up to 30 s for a lock."""

    dialect = "sqlite"

    def __init__(self, path: Path, busy_seconds: float = 30.0) -> None:
        try:
            self.connection = sqlite3.connect(path, isolation_level=None, timeout=busy_seconds,
                                              check_same_thread=False)
        except sqlite3.OperationalError as exc:
            raise unreachable(exc) from exc

    @contextmanager
    def transaction(self, immediate: bool = False) -> Iterator[Sql]:
        """``BEGIN [IMMEDIATE]`` … ``COMMIT`` (``ROLLBACK`` when the block raises); a file that
        stays locked or cannot be read is ``DependencyUnavailable``."""
        try:
            self.connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        except sqlite3.OperationalError as exc:
            raise unreachable(exc) from exc
        try:
            yield DbApiSql(self.connection, self.dialect)
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


def unreachable(exc: BaseException) -> DependencyUnavailable:
    """The outbox database could not be reached or used now: a later relay tries again."""
    return DependencyUnavailable(f"the outbox database is unavailable: {' '.join(str(exc).split())[:300]}")


def open_database(url: str) -> PostgresDatabase | SqliteDatabase:
    """The relay's connection to the outbox database at ``url`` (see the module docstring)."""
    scheme, _, rest = url.partition("://")
    family = scheme.split("+", 1)[0].lower()
    if family == "sqlite" and rest.startswith("/") and rest.strip("/"):
        return SqliteDatabase(Path(rest[1:].split("?", 1)[0]))
    if family in ("postgresql", "postgres") and rest:
        return PostgresDatabase(f"postgresql://{rest}")
    shown = scheme if rest else url[:20]
    raise ConfigurationError(f"the outbox database URL ({shown}://…) is not one ordertasks opens: {URL_HINT}")
