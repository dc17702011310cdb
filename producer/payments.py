"""The payment port and the local gateway that stands in for a card processor.

    PaymentError
    ├── PaymentDeclined      the card was refused: final, answer 402
    └── PaymentUnavailable   the processor could not be reached; nothing was charged, retry

Every charge carries an idempotency key (the order id): a second ``charge`` with the same
key returns the first charge's id and never charges again, which is what makes a retried
checkout safe.

``LocalGateway`` keeps its ledger in a table of its own SQLite file (``data_dir/payments.db``
when wired locally) so the "never charged twice" promise survives a restart of the checkout
server; with ``path=":memory:"`` (the default, used by tests) it lives as long as the object.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Protocol

DECLINED_TOKEN = "tok_declined"
UNAVAILABLE_TOKEN = "tok_unavailable"
ACCEPTED_TOKENS = frozenset({"tok_visa", "tok_mastercard", "tok_amex"})


class PaymentError(Exception):
    """Base of the payment port's errors."""


class PaymentDeclined(PaymentError):
    """The card was refused; retrying the same token will not help."""


class PaymentUnavailable(PaymentError):
    """The processor could not be reached or timed out; nothing was charged."""


class PaymentGateway(Protocol):
    """Charges a payment token, at most once per idempotency key."""

    def charge(self, idempotency_key: str, amount: Decimal, currency: str, token: str) -> str:
        """Charge ``amount`` and return the charge id.

        The same key again returns the same charge id without charging (the amount and
        currency must match, else ``PaymentDeclined``). Raises ``PaymentDeclined`` for a
        refused card and ``PaymentUnavailable`` when nothing could be charged right now.
        """
        ...


@dataclass(frozen=True)
class Charge:
    """One line of the local gateway's ledger."""

    charge_id: str
    idempotency_key: str
    amount: Decimal
    currency: str
    token: str
    created_at: datetime


_SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    idempotency_key TEXT PRIMARY KEY,
    charge_id TEXT NOT NULL UNIQUE,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    token TEXT NOT NULL,
    created_at TEXT NOT NULL
)"""


class LocalGateway:
    """Test tokens: ``tok_visa`` (and other ``ACCEPTED_TOKENS``) succeed, ``tok_declined``
    is refused, ``tok_unavailable`` fails as an outage; any other token is declined."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout = 5000")
        self._db.execute(_SCHEMA)
        # One connection shared by the server's threads: serialise its use.
        self._lock = threading.Lock()

    def charge(self, idempotency_key: str, amount: Decimal, currency: str, token: str) -> str:
        """See ``PaymentGateway.charge``."""
        if token == UNAVAILABLE_TOKEN:
            raise PaymentUnavailable("the payment processor is unavailable (test token tok_unavailable); "
                                     "nothing was charged, retry later")
        with self._lock:
            existing = self._find(idempotency_key)
            if existing is not None:
                return self._same_charge(existing, amount, currency)
            if token == DECLINED_TOKEN or token not in ACCEPTED_TOKENS:
                raise PaymentDeclined("the card was declined; use another payment method")
            try:
                return self._insert(idempotency_key, amount, currency, token).charge_id
            except sqlite3.IntegrityError:
                # Another process sharing the ledger charged this key first: same answer.
                return self._same_charge(self._find(idempotency_key), amount, currency)  # type: ignore[arg-type]
            except sqlite3.OperationalError as exc:
                raise PaymentUnavailable(f"the local payment ledger is busy ({exc}); retry") from exc

    def charges(self) -> list[Charge]:
        """The whole ledger, oldest first (for tests and the local stack's inspection)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM charges ORDER BY created_at, charge_id").fetchall()
        return [self._row(r) for r in rows]

    def close(self) -> None:
        """Close the ledger's database."""
        with self._lock:
            self._db.close()

    @staticmethod
    def _same_charge(existing: Charge, amount: Decimal, currency: str) -> str:
        if existing.amount != amount or existing.currency != currency:
            raise PaymentDeclined(f"idempotency key {existing.idempotency_key!r} was already used for "
                                  f"{existing.amount} {existing.currency}; use a new key for a new charge")
        return existing.charge_id

    def _find(self, key: str) -> Charge | None:
        row = self._db.execute("SELECT * FROM charges WHERE idempotency_key = ?", (key,)).fetchone()
        return self._row(row) if row else None

    def _insert(self, key: str, amount: Decimal, currency: str, token: str) -> Charge:
        charge = Charge("ch_" + secrets.token_hex(12), key, amount, currency, token, datetime.now(timezone.utc))
        self._db.execute("INSERT INTO charges VALUES (?, ?, ?, ?, ?, ?)",
                         (key, charge.charge_id, str(amount), currency, token, charge.created_at.isoformat()))
        return charge

    @staticmethod
    def _row(row: tuple[str, ...]) -> Charge:
        key, charge_id, amount, currency, token, created = row
        return Charge(charge_id, key, Decimal(amount), currency, token, datetime.fromisoformat(created))
