"""The payment ledger in SQLite: table ``payments`` in the order store's database file.

``record_payment`` is ``INSERT … ON CONFLICT DO NOTHING`` followed by a read in the same
transaction, so two processes charging one order agree on the first record. Each call uses
its own short connection (``handlers.backends.sqlite_database.ShortConnections``: the same
transaction rule and error translation as the store ports). Writes commit with
``synchronous=NORMAL`` as the order store in the same file does (WAL: a commit survives a
crash of the process; only a power cut can undo the last ones, never corrupt the file);
SQLite's default ``FULL`` cost an fsync per payment, about 5 ms of each checkout. A plain
read (``get_payment``, ``list_payments``) takes no write lock, so it never waits behind the
handler's writes to the same file.

Cancel-token digests live beside the payments, in table ``cancel_tokens`` (one row per order,
replaced when a token is handed out again). A file written before refunds carried a reason
gets the ``refund_reason`` column on first use (``ALTER TABLE … ADD COLUMN``: old rows read
as no reason).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from ordertasks.handlers.backends.sqlite_database import ShortConnections
from ordertasks.producer.ledger import Payment

SCHEMA = """CREATE TABLE IF NOT EXISTS payments (
    order_id TEXT PRIMARY KEY, processor TEXT NOT NULL, payment_id TEXT NOT NULL, amount TEXT NOT NULL,
    currency TEXT NOT NULL, state TEXT NOT NULL, created_at TEXT NOT NULL, token TEXT NOT NULL,
    refund_id TEXT, test INTEGER NOT NULL, refund_reason TEXT)"""
TOKENS_SCHEMA = """CREATE TABLE IF NOT EXISTS cancel_tokens (
    order_id TEXT PRIMARY KEY, digest TEXT NOT NULL, issued_at TEXT NOT NULL)"""
COLUMNS = "order_id, processor, payment_id, amount, currency, state, created_at, token, refund_id, test, refund_reason"
HINT = "retry"


class SqliteLedger:
    """``PaymentLedger`` over the SQLite file at ``path``."""

    def __init__(self, path: Path, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        # The table is created on first use, not here: building the app must not need the
        # database (a locked or missing store is a 503 per request, not a crash at start).
        self._db = ShortConnections(self.path, SCHEMA, "payment ledger", HINT, busy_timeout)
        self._tokens = ShortConnections(self.path, TOKENS_SCHEMA, "cancel tokens", HINT, busy_timeout)
        self._columns_checked = False

    def _payments(self) -> ShortConnections:
        """The payments table, with the columns added since it was first created."""
        if not self._columns_checked:
            # Checked with a read; only an old file pays for the write lock, once.
            with self._db.reading() as conn:
                missing = "refund_reason" not in _columns(conn)
            if missing:
                with self._db.transaction() as conn:
                    if "refund_reason" not in _columns(conn):
                        conn.execute("ALTER TABLE payments ADD COLUMN refund_reason TEXT")
            self._columns_checked = True
        return self._db

    def record_payment(self, payment: Payment) -> Payment:
        """See ``PaymentLedger.record_payment``."""
        with self._payments().transaction() as conn:
            conn.execute(f"INSERT INTO payments ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                         "ON CONFLICT (order_id) DO NOTHING", _row(payment))
            return _read(conn, payment.order_id)  # type: ignore[return-value]

    def get_payment(self, order_id: str) -> Payment | None:
        """See ``PaymentLedger.get_payment``."""
        with self._payments().reading() as conn:
            return _read(conn, order_id)

    def set_state(self, order_id: str, state: str, refund_id: str | None = None,
                  refund_reason: str | None = None) -> Payment | None:
        """See ``PaymentLedger.set_state``."""
        with self._payments().transaction() as conn:
            conn.execute("UPDATE payments SET state = ?, refund_id = COALESCE(?, refund_id), "
                         "refund_reason = COALESCE(?, refund_reason) WHERE order_id = ?",
                         (state, refund_id, refund_reason, order_id))
            return _read(conn, order_id)

    def list_payments(self) -> list[Payment]:
        """See ``PaymentLedger.list_payments``."""
        with self._payments().reading() as conn:
            rows = conn.execute(f"SELECT {COLUMNS} FROM payments ORDER BY created_at, order_id").fetchall()
        return [_payment(r) for r in rows]

    def set_cancel_digest(self, order_id: str, digest: str, issued_at: datetime) -> None:
        """See ``PaymentLedger.set_cancel_digest``."""
        with self._tokens.transaction() as conn:
            conn.execute("INSERT INTO cancel_tokens (order_id, digest, issued_at) VALUES (?, ?, ?) "
                         "ON CONFLICT (order_id) DO UPDATE SET digest = excluded.digest, issued_at = excluded.issued_at",
                         (order_id, digest, issued_at.isoformat()))

    def get_cancel_digest(self, order_id: str) -> str | None:
        """See ``PaymentLedger.get_cancel_digest``."""
        with self._tokens.reading() as conn:
            row = conn.execute("SELECT digest FROM cancel_tokens WHERE order_id = ?", (order_id,)).fetchone()
        return str(row[0]) if row else None


def _columns(conn: sqlite3.Connection) -> set[str]:
    return {str(row[1]) for row in conn.execute("PRAGMA table_info(payments)")}


def _read(conn: sqlite3.Connection, order_id: str) -> Payment | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM payments WHERE order_id = ?", (order_id,)).fetchone()
    return _payment(row) if row else None


def _row(p: Payment) -> tuple[object, ...]:
    return (p.order_id, p.processor, p.payment_id, str(p.amount), p.currency, p.state, p.created_at.isoformat(),
            p.token, p.refund_id, int(p.test), p.refund_reason)


def _payment(row: tuple[object, ...]) -> Payment:
    order_id, processor, payment_id, amount, currency, state, created_at, token, refund_id, test, reason = row
    return Payment(str(order_id), str(processor), str(payment_id), Decimal(str(amount)), str(currency), str(state),
                   datetime.fromisoformat(str(created_at)), str(token), None if refund_id is None else str(refund_id),
                   bool(test), None if reason is None else str(reason))
