"""SQLite stores: the embedded default for every store port (one file, WAL mode).

Tables: ``idempotency``, ``failed_tasks`` (history as JSON), ``analytics_orders``,
``analytics_daily`` (one row per day and shard; revenue and units as JSON maps), ``orders``,
``outbox``, ``checkout_keys``, ``effect_attempts`` (one row per delivery, by order) and
``attempt_minutes`` (per minute and kind, one counter row per outcome (``o:done``…) and per
duration bucket (``d:12``…): the overview reads an hour of them by the primary key). Times
are ISO-8601 UTC strings with microseconds, so text order is time order.

One class per port (``SqliteEffectStore``, ``SqliteFailedTaskStore``,
``SqliteAnalyticsStore``, ``SqliteOrderStore``, ``SqliteAttemptLog``); what they share is the
file, held by one ``Database`` (``handlers.backends.sqlite_database``: per-thread
connections, the write lock, ``BEGIN IMMEDIATE`` transactions). ``open_database(path)`` opens it with this schema,
``stores(db)`` builds the five ports on it, and ``SqliteStore(path)`` is both together,
under the name of the one class that used to serve every port. No transaction spans two
ports: the analytics fact and its shard change in one ``SqliteAnalyticsStore``
transaction, an order and its outbox in one ``SqliteOrderStore`` transaction.

Every read-decide-write runs inside ``BEGIN IMMEDIATE``: SQLite takes the write lock at
``BEGIN``, so two threads or processes never decide on the same stale read. The decisions
themselves are the shared transitions in ``handlers.backends.memory``.
``sqlite3.OperationalError`` (locked beyond ``busy_timeout``, disk I/O, unopenable file)
becomes ``DependencyUnavailable``.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from ordertasks.handlers import attempt_stats
from ordertasks.handlers.backends import memory as rules
from ordertasks.handlers.backends import queries
from ordertasks.handlers.backends.sqlite_database import STORE_HINT, Database, unavailable_as
from ordertasks.handlers.ports import (FAILED_RETENTION_SECONDS, AnalyticsFact, AttemptFailure, AttemptRecord,
                                       AuditChange, CheckoutReplay, Claim, ClaimState, DailyAggregate, EffectRecord,
                                       FailedFilter, FailedPage, FailedStatus, FailedTask, FailureReport, MinuteTally,
                                       OrderRecord, OrderStatus, OutboxEntry, OutboxState, Stores)

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="_Port")

SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    order_id TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL,
    lease_expires_at TEXT, first_attempt_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    expire_at TEXT NOT NULL, result TEXT NOT NULL DEFAULT '{}', duplicates INTEGER NOT NULL DEFAULT 0,
    attempt INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER, last_error TEXT, next_attempt_at TEXT,
    PRIMARY KEY (order_id, kind)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_expire_at ON idempotency (expire_at);
CREATE TABLE IF NOT EXISTS failed_tasks (
    id TEXT PRIMARY KEY, order_id TEXT NOT NULL, kind TEXT NOT NULL, queue TEXT NOT NULL,
    task_name TEXT NOT NULL, payload TEXT NOT NULL, error_type TEXT NOT NULL, error TEXT NOT NULL,
    attempts INTEGER NOT NULL, first_failed_at TEXT NOT NULL, last_failed_at TEXT NOT NULL,
    status TEXT NOT NULL, history TEXT NOT NULL, resolved_by TEXT, note TEXT,
    replays INTEGER NOT NULL DEFAULT 0, updated_at TEXT, expire_at TEXT);
CREATE INDEX IF NOT EXISTS failed_tasks_recent ON failed_tasks (last_failed_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS failed_tasks_status ON failed_tasks (status, last_failed_at DESC);
CREATE INDEX IF NOT EXISTS failed_tasks_kind ON failed_tasks (kind, last_failed_at DESC);
CREATE INDEX IF NOT EXISTS failed_tasks_error_type ON failed_tasks (error_type, last_failed_at DESC);
CREATE INDEX IF NOT EXISTS idempotency_kind_state ON idempotency (kind, state, updated_at);
CREATE TABLE IF NOT EXISTS analytics_orders (
    order_id TEXT PRIMARY KEY, day TEXT NOT NULL, currency TEXT NOT NULL,
    revenue_minor INTEGER NOT NULL, units TEXT NOT NULL, recorded_at TEXT NOT NULL, shard INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS analytics_daily (
    day TEXT NOT NULL, shard INTEGER NOT NULL, orders INTEGER NOT NULL,
    revenue_minor TEXT NOT NULL, units TEXT NOT NULL, PRIMARY KEY (day, shard)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY, status TEXT NOT NULL, snapshot TEXT NOT NULL, created_at TEXT NOT NULL,
    charge_id TEXT, paid_at TEXT);
CREATE TABLE IF NOT EXISTS outbox (
    order_id TEXT NOT NULL, kind TEXT NOT NULL, task_name TEXT NOT NULL, schedule_time TEXT NOT NULL,
    state TEXT NOT NULL, created_at TEXT NOT NULL, scheduled_at TEXT, seq INTEGER NOT NULL,
    audit_at TEXT, audits INTEGER NOT NULL DEFAULT 0, settled TEXT,
    PRIMARY KEY (order_id, kind));
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (state, created_at);
CREATE INDEX IF NOT EXISTS orders_email ON orders (json_extract(snapshot, '$.customer.email'), created_at DESC);
CREATE INDEX IF NOT EXISTS orders_recent ON orders (created_at DESC);
CREATE TABLE IF NOT EXISTS checkout_keys (
    key TEXT PRIMARY KEY, request_hash TEXT NOT NULL, order_id TEXT NOT NULL, status_code INTEGER,
    response TEXT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS effect_attempts (
    order_id TEXT NOT NULL, kind TEXT NOT NULL, attempt INTEGER NOT NULL, started_at TEXT NOT NULL,
    duration_ms INTEGER NOT NULL, outcome TEXT NOT NULL, answer TEXT NOT NULL, expire_at TEXT NOT NULL,
    task_name TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS effect_attempts_order ON effect_attempts (order_id, started_at);
CREATE INDEX IF NOT EXISTS effect_attempts_expire ON effect_attempts (expire_at);
CREATE TABLE IF NOT EXISTS attempt_minutes (
    minute TEXT NOT NULL, kind TEXT NOT NULL, counter TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (minute, kind, counter)) WITHOUT ROWID;
"""

_TIME_COLUMNS = frozenset({"lease_expires_at", "first_attempt_at", "updated_at", "expire_at", "first_failed_at",
                           "last_failed_at", "recorded_at", "schedule_time", "created_at", "scheduled_at", "paid_at",
                           "audit_at", "next_attempt_at", "started_at"})
# Columns later versions added to ``idempotency`` (a database made before gets them at open).
_EFFECT_COLUMNS = (("duplicates", "INTEGER NOT NULL DEFAULT 0"), ("attempt", "INTEGER NOT NULL DEFAULT 0"),
                   ("max_attempts", "INTEGER"), ("last_error", "TEXT"), ("next_attempt_at", "TEXT"))
_MARK_SCHEDULED = "UPDATE outbox SET state = ?, scheduled_at = ? WHERE order_id = ? AND kind = ?"
_JSON_COLUMNS = frozenset({"result", "payload", "history", "units", "revenue_minor", "snapshot", "response"})


# --- encoding ---------------------------------------------------------------------------


def to_text(moment: datetime) -> str:
    """ISO-8601 UTC with microseconds always present (so strings sort as times do)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)      # naive means UTC, as Firestore reads it
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_text(text: str) -> datetime:
    """The timezone-aware UTC datetime that ``to_text`` wrote."""
    return datetime.fromisoformat(text).astimezone(UTC)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_text(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=_json_default, sort_keys=True)
    return value


def _value(column: str, cell: Any) -> Any:
    if cell is None:
        return None
    if column in _TIME_COLUMNS:
        return from_text(cell)
    if column == "day":
        return date.fromisoformat(cell)
    if column == "history":
        return [{**entry, "failed_at": from_text(entry["failed_at"])} for entry in json.loads(cell)]
    if column in _JSON_COLUMNS and isinstance(cell, str):
        return json.loads(cell)
    return cell


def _row(record: Any, **extra: Any) -> dict[str, Any]:
    """A dataclass record as column → cell (plus columns the record does not carry)."""
    return {f.name: _cell(getattr(record, f.name)) for f in fields(record)} | {k: _cell(v) for k, v in extra.items()}


def _record(cls: type[R], row: sqlite3.Row | None) -> R | None:
    if row is None:
        return None
    return cls(**{f.name: _value(f.name, row[f.name]) for f in fields(cls)})  # type: ignore[arg-type]


def _upsert(conn: sqlite3.Connection, table: str, keys: tuple[str, ...], row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    updates = ", ".join(f"{c} = excluded.{c}" for c in row if c not in keys)
    conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(':' + c for c in row)}) "
                 f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}", row)


def _insert(conn: sqlite3.Connection, table: str, row: dict[str, Any], unless_exists: tuple[str, ...] = ()) -> bool:
    """Insert ``row``; with ``unless_exists`` (the key columns) do nothing on conflict. ``True`` if inserted."""
    conflict = f" ON CONFLICT ({', '.join(unless_exists)}) DO NOTHING" if unless_exists else ""
    cursor = conn.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(':' + c for c in row)}){conflict}",
                          row)
    return cursor.rowcount == 1


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Bring a database made by an older version up to the current schema."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(idempotency)")}
    for column, kind in _EFFECT_COLUMNS:
        if column not in columns:
            conn.execute(f"ALTER TABLE idempotency ADD COLUMN {column} {kind}")
    if "expire_at" not in {row[1] for row in conn.execute("PRAGMA table_info(failed_tasks)")}:
        conn.execute("ALTER TABLE failed_tasks ADD COLUMN expire_at TEXT")
    outbox = {row[1] for row in conn.execute("PRAGMA table_info(outbox)")}
    for column, kind in (("audit_at", "TEXT"), ("audits", "INTEGER NOT NULL DEFAULT 0"), ("settled", "TEXT")):
        if column not in outbox:
            conn.execute(f"ALTER TABLE outbox ADD COLUMN {column} {kind}")
    # Only unsettled entries carry an audit time: the auditor's query reads just those.
    conn.execute("CREATE INDEX IF NOT EXISTS outbox_audit ON outbox (audit_at) WHERE audit_at IS NOT NULL")
    conn.execute("CREATE INDEX IF NOT EXISTS failed_tasks_expire ON failed_tasks (expire_at) WHERE expire_at IS NOT NULL")


def _delete_expired_failed(conn: sqlite3.Connection, now: datetime) -> None:
    """SQLite has no TTL: resolved entries past ``expire_at`` go when the log is next written."""
    conn.execute("DELETE FROM failed_tasks WHERE expire_at IS NOT NULL AND expire_at <= ?", (to_text(now),))


def _shard_row(shard: DailyAggregate, number: int) -> dict[str, Any]:
    return {"day": shard.day.isoformat(), "shard": number, "orders": shard.orders,
            "revenue_minor": _cell(shard.revenue_minor), "units": _cell(shard.units)}


# --- the stores -------------------------------------------------------------------------


def open_database(path: Path, busy_timeout: float = 5.0) -> Database:
    """The database at ``path`` (created if needed) with the stores' tables; waits ``busy_timeout`` s for locks.

    Raises ``DependencyUnavailable`` when the file cannot be opened or written.
    """
    db = Database(path, busy_timeout)
    with unavailable_as(f"SQLite store {db.path}", STORE_HINT), db.transaction() as tx:
        for statement in filter(str.strip, SCHEMA.split(";")):
            tx.execute(statement)
        _add_missing_columns(tx)
    return db


def _guarded(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Turn SQLite's operational failures into the port's ``DependencyUnavailable``."""
    @functools.wraps(method)
    def wrapper(store: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with unavailable_as(f"SQLite store {store.db.path}", STORE_HINT):
            return method(store, *args, **kwargs)
    return wrapper


class _Port:
    """What every SQLite port holds: the shared ``Database``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def path(self) -> Path:
        """The database file."""
        return self.db.path


class SqliteEffectStore(_Port):
    """``EffectStore``: table ``idempotency``."""

    def _effect(self, conn: sqlite3.Connection, order_id: str, kind: str) -> EffectRecord | None:
        row = conn.execute("SELECT * FROM idempotency WHERE order_id = ? AND kind = ?", (order_id, kind)).fetchone()
        return _record(EffectRecord, row)

    @_guarded
    def claim_effect(self, order_id: str, kind: str, now: datetime, lease_seconds: float,
                     ttl_seconds: float) -> Claim:
        """See ``EffectStore.claim_effect``."""
        # Fast path for the common case, a first delivery: the claim of an absent record,
        # inserted unless a row exists, as one statement (no read, no BEGIN … COMMIT).
        # Otherwise decide on the row as found, inside a transaction.
        fresh = rules.claim_transition(None, order_id, kind, now, lease_seconds, ttl_seconds)
        with self.db.autocommit() as conn:
            if _insert(conn, "idempotency", _row(fresh.record), unless_exists=("order_id", "kind")):
                return fresh
        with self.db.transaction() as conn:
            claim = rules.claim_transition(self._effect(conn, order_id, kind), order_id, kind, now,
                                           lease_seconds, ttl_seconds)
            if claim.state is ClaimState.CLAIMED:
                _upsert(conn, "idempotency", ("order_id", "kind"), _row(claim.record))
            elif claim.state is ClaimState.DONE:
                conn.execute("UPDATE idempotency SET duplicates = duplicates + 1 WHERE order_id = ? AND kind = ?",
                             (order_id, kind))
            return claim

    @_guarded
    def cancel_effect(self, order_id: str, kind: str, now: datetime, ttl_seconds: float) -> ClaimState:
        """See ``EffectStore.cancel_effect`` (one immediate transaction: claims wait for it)."""
        with self.db.transaction() as conn:
            state, record = rules.cancel_transition(self._effect(conn, order_id, kind), order_id, kind, now,
                                                    ttl_seconds)
            if record is not None:
                _upsert(conn, "idempotency", ("order_id", "kind"), _row(record))
            return state

    @_guarded
    def effect_counts(self) -> dict[str, dict[str, int]]:
        """See ``EffectStore.effect_counts``."""
        rows = self.db.conn().execute("SELECT kind, state, duplicates FROM idempotency").fetchall()
        return rules.tally_effects((r["kind"], r["state"], r["duplicates"]) for r in rows)

    @_guarded
    def complete_effect(self, order_id: str, kind: str, result: dict[str, Any], now: datetime, *,
                        duplicate: bool = False) -> None:
        """See ``EffectStore.complete_effect``."""
        # The same change as rules.completed on an existing row, as one statement without
        # reading it first; only a record that is not there yet takes a transaction.
        with self.db.autocommit() as conn:
            marked = conn.execute("UPDATE idempotency SET state = ?, lease_expires_at = NULL, updated_at = ?, "
                                  "result = ?, duplicates = duplicates + ? WHERE order_id = ? AND kind = ?",
                                  (rules.DONE, to_text(now), _cell(dict(result)), int(duplicate), order_id, kind))
        if marked.rowcount == 0:
            with self.db.transaction() as conn:
                record = rules.completed(self._effect(conn, order_id, kind), order_id, kind, result, now, duplicate)
                _upsert(conn, "idempotency", ("order_id", "kind"), _row(record))

    @_guarded
    def release_effect(self, order_id: str, kind: str, now: datetime, failure: AttemptFailure | None = None) -> None:
        """See ``EffectStore.release_effect`` (one transaction: the read and the one write it already was)."""
        with self.db.transaction() as conn:
            record = rules.released(self._effect(conn, order_id, kind), now, failure, order_id, kind)
            if record is not None:
                _upsert(conn, "idempotency", ("order_id", "kind"), _row(record))

    @_guarded
    def get_effect(self, order_id: str, kind: str) -> EffectRecord | None:
        """See ``EffectStore.get_effect``."""
        return self._effect(self.db.conn(), order_id, kind)

    @_guarded
    def count_effects(self, kind: str, state: str | None = None, updated_since: datetime | None = None) -> int:
        """See ``EffectStore.count_effects``."""
        sql, params = "SELECT COUNT(*) FROM idempotency WHERE kind = ?", [kind]
        if state is not None:
            sql, params = sql + " AND state = ?", params + [state]
        if updated_since is not None:
            sql, params = sql + " AND updated_at >= ?", params + [to_text(updated_since)]
        row = self.db.one(sql, *params)
        return int(row[0]) if row else 0

    @_guarded
    def duplicates_absorbed(self, kind: str) -> int:
        """See ``EffectStore.duplicates_absorbed``."""
        row = self.db.one("SELECT COALESCE(SUM(duplicates), 0) FROM idempotency WHERE kind = ?", kind)
        return int(row[0]) if row else 0



class SqliteFailedTaskStore(_Port):
    """``FailedTaskStore``: table ``failed_tasks`` (history as JSON)."""

    @_guarded
    def record_failure(self, report: FailureReport) -> FailedTask:
        """See ``FailedTaskStore.record_failure``."""
        with self.db.transaction() as conn:
            found = self._failed(conn, f"{report.order_id}:{report.kind}")
            task = rules.failure_appended(found, report)
            _upsert(conn, "failed_tasks", ("id",), _row(task, updated_at=report.failed_at))
            return task

    def _failed(self, conn: sqlite3.Connection, failed_id: str) -> FailedTask | None:
        return _record(FailedTask, conn.execute("SELECT * FROM failed_tasks WHERE id = ?", (failed_id,)).fetchone())

    @_guarded
    def get_failed(self, failed_id: str) -> FailedTask | None:
        """See ``FailedTaskStore.get_failed``."""
        return self._failed(self.db.conn(), failed_id)

    @_guarded
    def list_failed(self, status: str | None = None, kind: str | None = None, limit: int = 100) -> list[FailedTask]:
        """See ``FailedTaskStore.list_failed``."""
        rows = self.db.conn().execute(
            "SELECT * FROM failed_tasks WHERE (:status IS NULL OR status = :status) AND (:kind IS NULL OR kind = :kind) "
            "ORDER BY last_failed_at DESC, id DESC LIMIT :limit", {"status": status, "kind": kind, "limit": limit})
        return [task for task in (_record(FailedTask, row) for row in rows) if task is not None]

    @_guarded
    def update_failed(self, failed_id: str, status: str, now: datetime, *, expect_status: str | None = None,
                      resolved_by: str | None = None, note: str | None = None, count_replay: bool = False,
                      retention_seconds: float = FAILED_RETENTION_SECONDS) -> FailedTask | None:
        """See ``FailedTaskStore.update_failed``."""
        with self.db.transaction() as conn:
            _delete_expired_failed(conn, now)
            task = rules.status_changed(self._failed(conn, failed_id), status, expect_status, resolved_by, note,
                                        count_replay, now, retention_seconds)
            if task is not None:
                _upsert(conn, "failed_tasks", ("id",), _row(task, updated_at=now))
            return task

    @_guarded
    def resolve_failed(self, failed_id: str, now: datetime, *, resolved_by: str, note: str,
                       retention_seconds: float = FAILED_RETENTION_SECONDS) -> FailedTask | None:
        """See ``FailedTaskStore.resolve_failed``."""
        # Called on every success: a plain read first, so the usual "no entry" takes no write lock.
        if self.db.conn().execute("SELECT 1 FROM failed_tasks WHERE id = ? AND status != ?",
                                   (failed_id, FailedStatus.RESOLVED)).fetchone() is None:
            return None
        with self.db.transaction() as conn:
            _delete_expired_failed(conn, now)
            task = rules.resolved_on_success(self._failed(conn, failed_id), resolved_by, note, now, retention_seconds)
            if task is not None:
                _upsert(conn, "failed_tasks", ("id",), _row(task, updated_at=now))
            return task

    @_guarded
    def count_failed(self, where: FailedFilter) -> int:
        """See ``FailedTaskStore.count_failed``."""
        clause, params = _failed_where(where)
        row = self.db.conn().execute(f"SELECT COUNT(*) FROM failed_tasks WHERE {clause}", params).fetchone()
        return int(row[0])

    @_guarded
    def failed_error_types(self, limit: int = 50) -> list[str]:
        """See ``FailedTaskStore.failed_error_types``: ``MIN(error_type)`` above the last one
        found, a seek on the ``failed_tasks_error_type`` index per value."""
        conn = self.db.conn()
        found: list[str] = []
        row = conn.execute("SELECT MIN(error_type) FROM failed_tasks").fetchone()
        while row[0] is not None and len(found) < limit:
            found.append(row[0])
            row = conn.execute("SELECT MIN(error_type) FROM failed_tasks WHERE error_type > ?", (row[0],)).fetchone()
        return found

    def page_failed(self, where: FailedFilter, limit: int = 50, cursor: str | None = None) -> FailedPage:
        """See ``FailedTaskStore.page_failed``."""
        clause, params = _failed_where(where)
        if cursor:
            moment, failed_id = queries.parse_failed_cursor(cursor)
            clause += " AND (last_failed_at, id) < (:cursor_at, :cursor_id)"
            params |= {"cursor_at": to_text(moment), "cursor_id": failed_id}
        rows = self.db.conn().execute(f"SELECT * FROM failed_tasks WHERE {clause} "
                                    "ORDER BY last_failed_at DESC, id DESC LIMIT :limit", params | {"limit": limit + 1})
        tasks = [task for task in (_record(FailedTask, row) for row in rows) if task is not None]
        page = tasks[:limit]
        return FailedPage(page, queries.failed_cursor(page[-1]) if len(tasks) > limit and page else None)



class SqliteAnalyticsStore(_Port):
    """``AnalyticsStore``: tables ``analytics_orders`` and ``analytics_daily``."""

    @_guarded
    def record_order_fact(self, fact: AnalyticsFact, shard: int) -> bool:
        """See ``AnalyticsStore.record_order_fact``."""
        with self.db.transaction() as conn:
            if not _insert(conn, "analytics_orders", _row(fact, shard=shard), unless_exists=("order_id",)):
                return False
            _upsert(conn, "analytics_daily", ("day", "shard"), _shard_row(self._shard(conn, fact, shard), shard))
            return True

    def _shard(self, conn: sqlite3.Connection, fact: AnalyticsFact, shard: int) -> DailyAggregate:
        row = conn.execute("SELECT * FROM analytics_daily WHERE day = ? AND shard = ?",
                           (fact.day.isoformat(), shard)).fetchone()
        totals = _record(DailyAggregate, row) or rules.empty_totals(fact.day)
        return rules.fact_added(totals, fact)

    @_guarded
    def get_fact(self, order_id: str) -> AnalyticsFact | None:
        """See ``AnalyticsStore.get_fact``."""
        return _record(AnalyticsFact, self.db.one("SELECT * FROM analytics_orders WHERE order_id = ?", order_id))

    @_guarded
    def count_facts(self, recorded_since: datetime | None = None) -> int:
        """See ``AnalyticsStore.count_facts``."""
        if recorded_since is None:
            row = self.db.one("SELECT COUNT(*) FROM analytics_orders")
        else:
            row = self.db.one("SELECT COUNT(*) FROM analytics_orders WHERE recorded_at >= ?", to_text(recorded_since))
        return int(row[0]) if row else 0

    @_guarded
    def daily_aggregate(self, day: date) -> DailyAggregate:
        """See ``AnalyticsStore.daily_aggregate``."""
        total = rules.empty_totals(day)
        for row in self.db.conn().execute("SELECT * FROM analytics_daily WHERE day = ?", (day.isoformat(),)):
            shard = _record(DailyAggregate, row)
            total = rules.totals_merged(total, shard) if shard else total
        return total



class SqliteOrderStore(_Port):
    """``OrderStore``: tables ``orders``, ``outbox`` and ``checkout_keys``."""

    @_guarded
    def create_order(self, order: OrderRecord) -> bool:
        """See ``OrderStore.create_order``."""
        return _insert(self.db.conn(), "orders", _row(order), unless_exists=("order_id",))

    @_guarded
    def get_order(self, order_id: str) -> OrderRecord | None:
        """See ``OrderStore.get_order``."""
        return _record(OrderRecord, self.db.one("SELECT * FROM orders WHERE order_id = ?", order_id))

    @_guarded
    def mark_paid(self, order_id: str, charge_id: str, outbox: list[OutboxEntry], now: datetime) -> bool:
        """See ``OrderStore.mark_paid``; unknown order → ``KeyError`` (nothing written)."""
        with self.db.transaction() as conn:
            found = conn.execute("SELECT status FROM orders WHERE order_id = ?", (order_id,)).fetchone()
            if found is not None and found[0] == OrderStatus.CANCELLED:
                return False                # a cancel that won the race is never undone
            self._update_order(conn, order_id, status=OrderStatus.PAID, charge_id=charge_id, paid_at=to_text(now))
            existing = self._outbox(conn, order_id)
            next_seq = conn.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM outbox WHERE order_id = ?",
                                    (order_id,)).fetchone()[0]
            for offset, entry in enumerate(rules.new_outbox_entries(existing, outbox)):
                _insert(conn, "outbox", _row(entry, seq=next_seq + offset, order_id=order_id))
        return True

    def _update_order(self, conn: sqlite3.Connection, order_id: str, **changes: Any) -> None:
        assignments = ", ".join(f"{column} = :{column}" for column in changes)
        cursor = conn.execute(f"UPDATE orders SET {assignments} WHERE order_id = :order_id",
                              changes | {"order_id": order_id})
        if cursor.rowcount == 0:
            raise KeyError(f"order {order_id} does not exist; create_order first")

    @_guarded
    def mark_payment_failed(self, order_id: str, now: datetime) -> None:
        """See ``OrderStore.mark_payment_failed``; unknown order → ``KeyError``."""
        with self.db.transaction() as conn:
            self._update_order(conn, order_id, status=OrderStatus.PAYMENT_FAILED)

    @_guarded
    def mark_cancelled(self, order_id: str, now: datetime) -> None:
        """See ``OrderStore.mark_cancelled``; unknown order → ``KeyError``."""
        with self.db.transaction() as conn:
            self._update_order(conn, order_id, status=OrderStatus.CANCELLED)

    @_guarded
    def mark_scheduled(self, order_id: str, kind: str, now: datetime) -> None:
        """See ``OrderStore.mark_scheduled``; unknown entry → ``KeyError``."""
        cursor = self.db.conn().execute(
            _MARK_SCHEDULED, (OutboxState.SCHEDULED, to_text(now), order_id, kind))
        if cursor.rowcount == 0:
            raise KeyError(f"order {order_id} has no outbox entry {kind}")

    @_guarded
    def mark_scheduled_many(self, order_id: str, kinds: list[str], now: datetime) -> None:
        """See ``OrderStore.mark_scheduled_many``; an unknown entry → ``KeyError``, nothing changed."""
        with self.db.transaction() as conn:
            for kind in kinds:
                cursor = conn.execute(_MARK_SCHEDULED, (OutboxState.SCHEDULED, to_text(now), order_id, kind))
                if cursor.rowcount == 0:
                    raise KeyError(f"order {order_id} has no outbox entry {kind}")

    def _outbox(self, conn: sqlite3.Connection, order_id: str) -> list[OutboxEntry]:
        rows = conn.execute("SELECT * FROM outbox WHERE order_id = ? ORDER BY seq", (order_id,))
        return [entry for entry in (_record(OutboxEntry, row) for row in rows) if entry is not None]

    @_guarded
    def outbox_for(self, order_id: str) -> list[OutboxEntry]:
        """See ``OrderStore.outbox_for``."""
        return self._outbox(self.db.conn(), order_id)

    @_guarded
    def pending_outbox(self, created_before: datetime, limit: int = 500) -> list[OutboxEntry]:
        """See ``OrderStore.pending_outbox``."""
        rows = self.db.conn().execute(
            "SELECT * FROM outbox WHERE state = ? AND created_at < ? "
            "ORDER BY created_at, order_id || ':' || kind LIMIT ?", (OutboxState.PENDING, to_text(created_before), limit))
        return [entry for entry in (_record(OutboxEntry, row) for row in rows) if entry is not None]

    @_guarded
    def due_audits(self, now: datetime, limit: int = 500) -> list[OutboxEntry]:
        """See ``OrderStore.due_audits`` (served by the partial ``outbox_audit`` index)."""
        rows = self.db.conn().execute(
            "SELECT * FROM outbox WHERE audit_at IS NOT NULL AND audit_at <= ? AND settled IS NULL "
            "ORDER BY audit_at, order_id || ':' || kind LIMIT ?", (to_text(now), limit))
        return [entry for entry in (_record(OutboxEntry, row) for row in rows) if entry is not None]

    def update_audit(self, order_id: str, kind: str, expect_audit_at: datetime, *, audit_at: datetime | None,
                     audits: int | None = None, settled: str | None = None) -> bool:
        """See ``OrderStore.update_audit``."""
        return kind in self.update_audits(order_id, [AuditChange(kind, expect_audit_at, audit_at, audits, settled)])

    @_guarded
    def update_audits(self, order_id: str, changes: list[AuditChange]) -> set[str]:
        """See ``OrderStore.update_audits``: one conditional ``UPDATE`` per change, in one transaction."""
        written = set()
        with self.db.transaction() as conn:
            for change in changes:
                cursor = conn.execute(
                    "UPDATE outbox SET audit_at = ?, audits = COALESCE(?, audits), settled = COALESCE(?, settled) "
                    "WHERE order_id = ? AND kind = ? AND audit_at = ?",
                    (_cell(change.audit_at), change.audits, change.settled, order_id, change.kind,
                     to_text(change.expect_audit_at)))
                if cursor.rowcount == 1:
                    written.add(change.kind)
        return written

    @_guarded
    def reserve_checkout(self, key: str, request_hash: str, order_id: str, now: datetime) -> CheckoutReplay | None:
        """See ``OrderStore.reserve_checkout``."""
        with self.db.transaction() as conn:
            reservation = CheckoutReplay(key, request_hash, order_id, None, None, now)
            if _insert(conn, "checkout_keys", _row(reservation), unless_exists=("key",)):
                return None
            return _record(CheckoutReplay, conn.execute("SELECT * FROM checkout_keys WHERE key = ?", (key,)).fetchone())

    @_guarded
    def finish_checkout(self, key: str, status_code: int, response: dict[str, Any]) -> None:
        """See ``OrderStore.finish_checkout``; unknown key → ``KeyError``."""
        cursor = self.db.conn().execute("UPDATE checkout_keys SET status_code = ?, response = ? WHERE key = ?",
                                      (status_code, _cell(response), key))
        if cursor.rowcount == 0:
            raise KeyError(f"checkout key {key!r} was never reserved")

    @_guarded
    def orders_by_email(self, email: str, limit: int = 20) -> list[OrderRecord]:
        """See ``OrderStore.orders_by_email`` (served by the ``orders_email`` expression index)."""
        rows = self.db.conn().execute("SELECT * FROM orders WHERE json_extract(snapshot, '$.customer.email') = ? "
                                    "ORDER BY created_at DESC LIMIT ?", (email, limit))
        return [order for order in (_record(OrderRecord, row) for row in rows) if order is not None]

    @_guarded
    def recent_orders(self, limit: int = 20) -> list[OrderRecord]:
        """See ``OrderStore.recent_orders``."""
        rows = self.db.conn().execute("SELECT * FROM orders ORDER BY created_at DESC LIMIT ?", (limit,))
        return [order for order in (_record(OrderRecord, row) for row in rows) if order is not None]


MINUTES_KEPT = timedelta(days=2)    # the overview reads the last hour; a little more for looking back


class SqliteAttemptLog(_Port):
    """``AttemptLog``: tables ``effect_attempts`` and ``attempt_minutes``."""

    @_guarded
    def record_attempt(self, attempt: AttemptRecord) -> None:
        """See ``AttemptLog.record_attempt``: one transaction, which also deletes what expired."""
        tally = attempt_stats.tally_of(attempt)
        counters = [f"o:{outcome}" for outcome in tally.outcomes] + [f"d:{bucket}" for bucket in tally.durations]
        minute = to_text(tally.minute)
        with self.db.transaction() as conn:
            _insert(conn, "effect_attempts", _row(attempt))
            conn.executemany("INSERT INTO attempt_minutes (minute, kind, counter, n) VALUES (?, ?, ?, 1) "
                             "ON CONFLICT (minute, kind, counter) DO UPDATE SET n = n + 1",
                             [(minute, attempt.kind, counter) for counter in counters])
            # SQLite has no TTL: both deletes are index range scans, empty almost every time.
            conn.execute("DELETE FROM effect_attempts WHERE expire_at <= ?", (to_text(attempt.started_at),))
            conn.execute("DELETE FROM attempt_minutes WHERE minute < ?", (to_text(tally.minute - MINUTES_KEPT),))

    @_guarded
    def attempts_for(self, order_id: str, limit: int = 500) -> list[AttemptRecord]:
        """See ``AttemptLog.attempts_for`` (the ``effect_attempts_order`` index)."""
        rows = self.db.conn().execute("SELECT * FROM effect_attempts WHERE order_id = ? ORDER BY started_at, kind "
                                      "LIMIT ?", (order_id, limit))
        return [a for a in (_record(AttemptRecord, row) for row in rows) if a is not None]

    @_guarded
    def minute_tallies(self, since: datetime, until: datetime) -> list[MinuteTally]:
        """See ``AttemptLog.minute_tallies`` (a range of the primary key)."""
        rows = self.db.conn().execute("SELECT minute, kind, counter, n FROM attempt_minutes WHERE minute >= ? "
                                      "AND minute < ?", (to_text(attempt_stats.minute_of(since)),
                                                         to_text(attempt_stats.minute_of(until))))
        return attempt_stats.merged(_counter_tally(row) for row in rows)


def _counter_tally(row: sqlite3.Row) -> MinuteTally:
    """One ``attempt_minutes`` row as a tally of its own."""
    kind, name = row["counter"].split(":", 1)
    outcomes, durations = ({name: row["n"]}, {}) if kind == "o" else ({}, {int(name): row["n"]})
    return MinuteTally(row["kind"], from_text(row["minute"]), outcomes, durations)


def stores(db: Database) -> Stores:
    """The store ports on ``db`` (see ``open_database``)."""
    return Stores(effects=SqliteEffectStore(db), failed=SqliteFailedTaskStore(db), analytics=SqliteAnalyticsStore(db),
                  orders=SqliteOrderStore(db), attempts=SqliteAttemptLog(db))


class SqliteStore(Stores):
    """The SQLite ports on one file: ``open_database(path)`` and ``stores(db)`` in one step,
    under the name of the one class that used to serve them all (``SqliteStore(path).effects``
    is its ``EffectStore``)."""

    db: Database

    def __init__(self, path: Path, busy_timeout: float = 5.0) -> None:
        """Open (creating if needed) the database at ``path``; waits ``busy_timeout`` s for locks."""
        db = open_database(path, busy_timeout)
        super().__init__(effects=SqliteEffectStore(db), failed=SqliteFailedTaskStore(db),
                         analytics=SqliteAnalyticsStore(db), orders=SqliteOrderStore(db), attempts=SqliteAttemptLog(db))
        object.__setattr__(self, "db", db)      # a frozen dataclass: set once, here

    @property
    def path(self) -> Path:
        """The database file."""
        return self.db.path

    def close(self) -> None:
        """Close every connection the stores opened (in any thread)."""
        self.db.close()


def _failed_where(where: FailedFilter) -> tuple[str, dict[str, Any]]:
    """The SQL condition and parameters of a failed-task filter (only the conditions given,
    so SQLite can pick the matching index)."""
    wanted = {"status": ("status", "=", where.status), "kind": ("kind", "=", where.kind),
              "error_type": ("error_type", "=", where.error_type),
              "since": ("last_failed_at", ">=", to_text(where.failed_since) if where.failed_since else None),
              "before": ("last_failed_at", "<", to_text(where.failed_before) if where.failed_before else None)}
    given = {name: spec for name, spec in wanted.items() if spec[2] is not None}
    clause = " AND ".join(f"{column} {op} :{name}" for name, (column, op, _) in given.items()) or "1 = 1"
    return clause, {name: value for name, (_, _, value) in given.items()}
