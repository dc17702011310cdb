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


class DbApiSql:
    """``Sql`` over a DB-API connection (psycopg 3 or sqlite3): ``?`` becomes ``%s`` for psycopg."""

    def __init__(self, connection: Any, dialect: str) -> None:
        self.connection, self.dialect = connection, dialect

    def _text(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.dialect == "postgresql" else statement

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        """One statement; its rows."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(self._text(statement), tuple(params))
            return [tuple(r) for r in cursor.fetchall()] if cursor.description else []
        finally:
            cursor.close()

    def executemany(self, statement: str, params: Sequence[Sequence[Any]]) -> None:
        """One statement per parameter tuple."""
        if params:
            cursor = self.connection.cursor()
            try:
                cursor.executemany(self._text(statement), [tuple(p) for p in params])
            finally:
                cursor.close()


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
    if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        raise UnsupportedTransaction("this SQLAlchemy connection is in AUTOCOMMIT mode: the outbox rows would "
                                     "commit on their own; pass a connection in a transaction")
    return AlchemySql(connection)


def _psycopg(transaction: Any) -> Sql:
    from psycopg.pq import TransactionStatus

    if transaction.autocommit and transaction.info.transaction_status == TransactionStatus.IDLE:
        raise UnsupportedTransaction("this psycopg connection is in autocommit mode outside a transaction: "
                                     "write inside `with conn.transaction():` so the outbox rows commit with your order")
    return DbApiSql(transaction, "postgresql")


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
