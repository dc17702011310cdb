"""One SQLite database file as every SQLite-backed store uses it: connections, transactions, errors.

Two ways to hold the file, one transaction rule:

- ``Database``: the store ports' file (``handlers.backends.sqlite``), opened once. One
  connection per thread (functions-framework and the tests use threads), closed when its
  thread ends; WAL mode, so readers never block the writer.
- ``ShortConnections``: a connection per call, the schema created on first use (the
  producer's price book and payment ledger: a handful of statements per order, so nothing
  to pool, and building the checkout app must not need the database).

A write that decides nothing on a read is one statement in autocommit mode
(``Database.autocommit``). A read-decide-write runs inside ``BEGIN IMMEDIATE``
(``immediate``): SQLite takes the write lock at ``BEGIN``, so two threads or processes
never decide on the same stale read; the sqlite3 module's implicit deferred ``BEGIN``
could deadlock on the lock upgrade instead.
``sqlite3.OperationalError`` (locked beyond ``busy_timeout``, disk I/O, an unopenable file)
becomes ``DependencyUnavailable`` (``unavailable_as``), whose message names the file.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from ordertasks.handlers.errors import DependencyUnavailable

_WRITER_LOCKS: dict[Path, threading.RLock] = {}
_WRITER_LOCKS_GUARD = threading.Lock()


def writer_lock(path: Path) -> threading.RLock:
    """The in-process write lock of the database file at ``path`` (shared by every store on it)."""
    key = path.resolve()
    with _WRITER_LOCKS_GUARD:
        return _WRITER_LOCKS.setdefault(key, threading.RLock())


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` on ``conn`` (opened with ``isolation_level=None``)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # Also after a failed COMMIT: the connection must not stay mid-transaction.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextmanager
def unavailable_as(what: str, hint: str) -> Iterator[None]:
    """Re-raise SQLite's operational failures inside as ``DependencyUnavailable``: "{what} unavailable (…); {hint}"."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise DependencyUnavailable(f"{what} unavailable ({exc}); {hint}") from exc


STORE_HINT = ("check that its directory exists and is writable and that no other process holds a long "
              "write lock")


class _ThreadConnection:
    """One thread's connection; closed when the thread's local storage lets go of it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __del__(self) -> None:
        self.conn.close()


class Database:
    """The SQLite file at ``path`` shared by the store ports: per-thread connections and the write lock."""

    def __init__(self, path: Path, busy_timeout: float = 5.0) -> None:
        """Open the file (creating it) in WAL mode; statements wait ``busy_timeout`` s for locks.

        Raises ``DependencyUnavailable`` when the file cannot be opened.
        """
        self.path = Path(path)
        self._busy_ms = int(busy_timeout * 1000)
        self._local = threading.local()
        self._opened: weakref.WeakSet[_ThreadConnection] = weakref.WeakSet()
        self._opened_lock = threading.Lock()
        self._write_lock = writer_lock(self.path)
        with unavailable_as(f"SQLite store {self.path}", STORE_HINT):
            self.conn().execute("PRAGMA journal_mode=WAL")   # persistent: readers never block the writer

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        holder: _ThreadConnection | None = getattr(self._local, "holder", None)
        if holder is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            conn.execute("PRAGMA synchronous=NORMAL")
            # Only this thread's local holds the holder strongly: when the thread ends (a
            # threaded WSGI server starts one per request) the connection closes with it.
            holder = self._local.holder = _ThreadConnection(conn)
            with self._opened_lock:
                self._opened.add(holder)
        return holder.conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection inside ``BEGIN IMMEDIATE`` (committed, or rolled back on an error)."""
        # Threads of this process queue on a Python lock first: SQLite's busy handler polls
        # with sleeps of 1-10 ms, which under a handler's 8 threads cost more than the
        # transactions themselves. Other processes still meet SQLite's lock and busy_timeout.
        with self._write_lock, immediate(self.conn()) as conn:
            yield conn

    @contextmanager
    def autocommit(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection for **one** write statement that commits by itself.

        A lone statement outside ``BEGIN`` is its own transaction in SQLite, so a write that
        decides nothing on an earlier read (an insert unless the row exists, an update by
        key) needs no ``BEGIN IMMEDIATE`` … ``COMMIT``: one round trip instead of three. It
        waits in the same in-process write queue as ``transaction``.
        """
        with self._write_lock:
            yield self.conn()

    def one(self, sql: str, *params: object) -> sqlite3.Row | None:
        """The first row of a read, or ``None``."""
        row: sqlite3.Row | None = self.conn().execute(sql, params).fetchone()
        return row

    def close(self) -> None:
        """Close every connection this database opened (in any thread)."""
        with self._opened_lock:
            for holder in list(self._opened):
                holder.conn.close()
            self._opened.clear()
        self._local = threading.local()


class ShortConnections:
    """The SQLite file at ``path`` opened for each call, with ``schema`` created on first use.

    ``what`` names the store in the ``DependencyUnavailable`` message, ``hint`` says what to do.
    """

    def __init__(self, path: Path, schema: str, what: str, hint: str, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self._schema = schema
        self._what, self._hint = what, hint
        self._busy_timeout = busy_timeout
        self._schema_ready = False

    @contextmanager
    def _opened(self) -> Iterator[sqlite3.Connection]:
        with unavailable_as(f"{self._what} {self.path}", self._hint), \
                closing(sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)) as conn:
            if not self._schema_ready:
                conn.execute(self._schema)
            yield conn
        self._schema_ready = True

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A new connection inside ``BEGIN IMMEDIATE`` (all or nothing), closed after.

        It commits with ``synchronous=NORMAL``, as ``Database`` does: in WAL mode a commit
        survives a crash of the process (only a power cut can undo the last ones), and the
        default ``FULL`` costs an fsync per commit.
        """
        with self._opened() as conn:
            conn.execute("PRAGMA synchronous=NORMAL")
            with immediate(conn):
                yield conn

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A new connection in autocommit mode, for reads that need no lock, closed after."""
        with self._opened() as conn:
            yield conn
