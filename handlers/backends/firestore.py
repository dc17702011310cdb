"""Firestore stores: every store port on Cloud Firestore (native mode).

Collections (each name prefixed with ``prefix``)::

    idempotency/{order_id}:{kind}          EffectRecord; expire_at is the TTL field
    failed_tasks/{order_id}:{kind}         flat, console-readable FailedTask (+ updated_at)
    analytics_orders/{order_id}            AnalyticsFact (+ shard), day as "YYYY-MM-DD"
    analytics_daily/{YYYY-MM-DD}/shards/{k}  orders, revenue_minor{currency}, units{sku}
    orders/{order_id}                      OrderRecord (+ outbox map, outbox_pending_since,
                                           outbox_audit_at)
    outbox/{order_id}:{kind}               OutboxEntry (+ seq; pending_since while pending): the
                                           layout before 0.2, still read, written only by
                                           ``outbox_layout="documents"``
    checkout_keys/{sha256(key)}            CheckoutReplay
    effect_attempts/{order_id}:{kind}:{started_at}:{random}   AttemptRecord; expire_at is the TTL field
    attempt_minutes/{YYYYMMDDHHMM}:{kind}:{k}  minute, kind, outcomes{outcome}, durations{"b<bucket>"},
                                           expire_at (TTL): shard k of the kind's minute

One class per port (``FirestoreEffectStore``, ``FirestoreFailedTaskStore``,
``FirestoreAnalyticsStore``, ``FirestoreOrderStore``, ``FirestoreAttemptLog``); what they
share is one ``FirestoreDatabase``: the client, the collection prefix, the call options
(retry and deadline) and the read-decide-write loop below. ``stores(db)`` builds the five
ports on it; ``FirestoreStore(client, ...)`` is both together, under the name of the one
class that used to serve every port. No write spans two ports: the analytics fact and its shard
commit in one batch of ``FirestoreAnalyticsStore``, an order and its outbox in one batch of
``FirestoreOrderStore``.

Concurrency: read, decide with the shared rules in ``handlers.backends.memory``, then write
with a precondition: ``create()`` when the document was absent, ``last_update_time`` when it
existed. A lost race (Conflict / FailedPrecondition / NotFound) re-reads and decides again.
Several documents that change together go in one batch, which commits atomically or not at
all. We use preconditions rather than ``@transactional`` because Firestore's server-side
transactions take pessimistic locks: on the emulator, 20 concurrent read-then-create
transactions on one document ended, in two runs of three, with 19 of them failing
"Transaction lock timeout" after 10 s (even 2 contenders waited 2 s), while 20 concurrent
``create()`` calls settle at once: one wins, 19 get Conflict. Preconditions never wait.

The outbox lives in its order's document (``outbox``: kind -> entry, ``outbox_pending_since``:
the oldest pending entry's ``created_at``, present only while one is pending): Firestore bills
per document written, so the paid mark with six entries is one write instead of seven and
the six ``scheduled`` marks one instead of six (``mark_scheduled_many``). Orders placed
before that change keep their ``outbox/`` documents, which every outbox method still reads
and updates; ``outbox_layout="documents"`` writes that layout too (the ``cloud_cost``
benchmark's baseline).

The ledger's auditor reads ``orders`` by ``outbox_audit_at`` (the earliest ``audit_at`` of the
order's unsettled entries, present only while one is unsettled) and legacy ``outbox`` by
``audit_at``: single-field range queries too.

The handler's and the checkout's queries are single-field (no composite index): ``orders``
by ``outbox_pending_since`` and legacy ``outbox`` by ``order_id`` (equality) or by
``pending_since`` (range + order on the same field),
``failed_tasks`` by equality on ``status``/``kind`` (sorted in memory) or ordered by
``last_failed_at`` alone. The operators' queries (console, ``ordertasks stats``) are
aggregations (``count()``, ``sum()``) and ordered, cursor-paginated pages; the composite
indexes they need are listed once, in ``COMPOSITE_INDEXES``, which ``deploy`` creates.
Firestore merges single-field equality indexes, so one (field, last_failed_at) index per
filter field serves every combination of failed-task filters.

Every RPC carries our retry deadline (``timeout``), so an unreachable Firestore surfaces
as ``DependencyUnavailable`` after about ``timeout`` seconds, not the client's 60-300 s.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import zlib
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import grpc  # type: ignore[import-untyped,unused-ignore]  # no stubs in the runtime deps
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_exception_type
from google.auth import exceptions as auth_exceptions
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from ordertasks.handlers import attempt_stats
from ordertasks.handlers.backends import memory as rules
from ordertasks.handlers.backends import queries
from ordertasks.handlers.errors import DependencyUnavailable
from ordertasks.handlers.ports import (FAILED_RETENTION_SECONDS, AnalyticsFact, AttemptFailure, AttemptRecord,
                                       AuditChange, CheckoutReplay, Claim, ClaimState, DailyAggregate, EffectRecord,
                                       FailedFilter, FailedPage, FailedTask, FailureReport, MinuteTally, OrderRecord,
                                       OrderStatus, OutboxEntry, OutboxState, Stores)

OUTBOX_LAYOUTS = ("order", "documents")
P = ParamSpec("P")
R = TypeVar("R")
Doc = dict[str, Any]

_LOST_RACE = (gexc.Conflict, gexc.FailedPrecondition, gexc.NotFound)
_TRANSIENT = (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError, gexc.ResourceExhausted,
              gexc.Aborted)
_UNREACHABLE = (gexc.GoogleAPICallError, gexc.RetryError, grpc.RpcError, auth_exceptions.TransportError)


@dataclass(frozen=True)
class CompositeIndex:
    """A Firestore composite index: a collection group and its (field path, order) pairs."""

    collection_group: str
    fields: tuple[tuple[str, str], ...]     # order is "ascending" or "descending"

    def field_configs(self) -> list[str]:
        """``--field-config`` values for ``gcloud firestore indexes composite create``."""
        return [f"field-path={path},order={order}" for path, order in self.fields]


# Every composite index the operators' queries need (console pages, ``ordertasks stats``).
COMPOSITE_INDEXES: tuple[CompositeIndex, ...] = (
    CompositeIndex("failed_tasks", (("status", "ascending"), ("last_failed_at", "descending"))),
    CompositeIndex("failed_tasks", (("kind", "ascending"), ("last_failed_at", "descending"))),
    CompositeIndex("failed_tasks", (("error_type", "ascending"), ("last_failed_at", "descending"))),
    CompositeIndex("idempotency", (("kind", "ascending"), ("state", "ascending"), ("updated_at", "ascending"))),
    CompositeIndex("orders", (("snapshot.customer.email", "ascending"), ("created_at", "descending"))),
)


# --- encoding ---------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Firestore values as plain Python: its timestamp subclass becomes an aware UTC datetime."""
    if isinstance(value, datetime):
        utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return datetime(utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, tzinfo=UTC)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _doc(record: Any, skip: tuple[str, ...] = ()) -> Doc:
    """A dataclass record as document fields (dates as ISO strings, maps copied)."""
    doc = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if f.name not in skip:
            doc[f.name] = value.isoformat() if type(value) is date else value
    return doc


def _maybe(snap: Any, field: str) -> Any:
    """A field of a snapshot, or ``None`` when the document lacks it."""
    try:
        return snap.get(field)
    except KeyError:
        return None


def _record(cls: type[R], snap: Any, **extra: Any) -> R | None:
    """The dataclass stored in ``snap`` (fields missing from the document take defaults)."""
    if not snap.exists:
        return None
    data = _plain(snap.to_dict()) | extra
    if isinstance(data.get("day"), str):
        data["day"] = date.fromisoformat(data["day"])
    return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})  # type: ignore[arg-type]


def _outbox_doc(entry: OutboxEntry, order_id: str, seq: int) -> Doc:
    doc = _doc(entry) | {"order_id": order_id, "seq": seq}
    if entry.state == OutboxState.PENDING:
        doc["pending_since"] = entry.created_at   # present only while pending: one single-field index
    return doc


def _embedded_doc(entry: OutboxEntry, seq: int) -> Doc:
    """An outbox entry as a value of its order's ``outbox`` map."""
    return _doc(entry, skip=("order_id", "kind")) | {"seq": seq}


def _embedded_outbox(snap: Any) -> dict[str, Doc] | None:
    """The order document's ``outbox`` map; ``None`` for an order of the legacy layout (or none)."""
    if not snap.exists:
        return None
    entries = _maybe(snap, "outbox")
    return None if entries is None else _plain(entries)


def _embedded_entries(order_id: str, entries: dict[str, Doc]) -> list[OutboxEntry]:
    """The map's entries as ``OutboxEntry`` values, in order of creation."""
    names = [f.name for f in fields(OutboxEntry) if f.name not in ("order_id", "kind")]
    ordered = sorted(entries.items(), key=lambda item: item[1].get("seq", 0))
    return [OutboxEntry(order_id=order_id, kind=kind, **{n: value[n] for n in names if n in value})
            for kind, value in ordered]


def _pending_since(entries: dict[str, Doc]) -> Any:
    """The oldest pending entry's ``created_at``; a field delete when none is pending."""
    pending = [value["created_at"] for value in entries.values() if value["state"] == OutboxState.PENDING]
    return min(pending) if pending else firestore.DELETE_FIELD


def _audit_at(entries: dict[str, Doc]) -> Any:
    """The earliest ``audit_at`` of the unsettled entries; a field delete when none is left."""
    due = [value["audit_at"] for value in entries.values()
           if value.get("audit_at") is not None and value.get("settled") is None]
    return min(due) if due else firestore.DELETE_FIELD


def _audited(value: Doc, change: AuditChange) -> Doc | None:
    """An entry's fields after an audit change; ``None`` when its ``audit_at`` moved on."""
    found = value.get("audit_at")
    if found is None or _plain(found) != _plain(change.expect_audit_at):
        return None
    fields_ = {"audit_at": change.audit_at, "audits": change.audits, "settled": change.settled}
    return value | {name: new for name, new in fields_.items() if new is not None or name == "audit_at"}


def _embedded_audits(changes: list[AuditChange]) -> Callable[[Any], tuple[set[str] | None, Doc | None]]:
    """The decision of ``update_audits`` on an order document (``None``: the legacy layout)."""
    def decide(snap: Any) -> tuple[set[str] | None, Doc | None]:
        entries = _embedded_outbox(snap)
        if entries is None:
            return None, None
        written = set()
        for change in changes:
            changed = _audited(entries[change.kind], change) if change.kind in entries else None
            if changed is not None:
                entries[change.kind] = changed
                written.add(change.kind)
        return written, ({"outbox": entries, "outbox_audit_at": _audit_at(entries)} if written else None)
    return decide


def _legacy_audit(change: AuditChange) -> Callable[[Any], tuple[bool, Doc | None]]:
    """The decision of one audit change on a legacy ``outbox/`` document."""
    def decide(snap: Any) -> tuple[bool, Doc | None]:
        changed = _audited(_plain(snap.to_dict()), change) if snap.exists else None
        return (False, None) if changed is None else (True, changed)
    return decide


def _increments(fact: AnalyticsFact) -> Doc:
    """The shard change for one fact, as server-side increments (no read of the hot shard)."""
    return {"day": fact.day.isoformat(), "orders": firestore.Increment(1),
            "revenue_minor": {fact.currency: firestore.Increment(fact.revenue_minor)},
            "units": {sku: firestore.Increment(units) for sku, units in fact.units.items()}}


def _guarded(method: Callable[P, R]) -> Callable[P, R]:
    """Turn Firestore/gRPC/transport failures into the port's ``DependencyUnavailable``."""
    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except _UNREACHABLE as exc:
            raise DependencyUnavailable(
                f"Firestore unavailable ({type(exc).__name__}: {exc}); check the network, the project and "
                "database, the service account's roles/datastore.user, or FIRESTORE_EMULATOR_HOST locally") from exc
    return wrapper


# --- the database the ports share ------------------------------------------------------


class FirestoreDatabase:
    """A Firestore client as the store ports use it: collection names, call options, guarded writes."""

    def __init__(self, client: firestore.Client, prefix: str = "", timeout: float = 30.0, max_races: int = 25) -> None:
        """Use ``client``; collection names get ``prefix``; each call gives up after ``timeout`` s;
        a read-decide-write gives up after ``max_races`` lost races."""
        self.client = client
        self.prefix = prefix
        self.timeout = timeout
        self.max_races = max_races
        self._retry = Retry(predicate=if_exception_type(*_TRANSIENT), initial=0.1, maximum=2.0, multiplier=2.0,
                            timeout=timeout)

    def collection(self, name: str) -> Any:
        """The collection ``name`` (prefixed)."""
        return self.client.collection(self.prefix + name)

    def ref(self, collection: str, doc_id: str) -> Any:
        """The document ``doc_id`` of ``collection``."""
        return self.collection(collection).document(doc_id)

    @property
    def call(self) -> dict[str, Any]:
        """The keyword arguments every RPC takes: our retry and deadline."""
        return {"retry": self._retry, "timeout": self.timeout}

    def get(self, ref: Any) -> Any:
        """The snapshot of ``ref``."""
        return ref.get(**self.call)

    def stage(self, batch: Any, snap: Any, doc: Doc) -> None:
        """Add to ``batch`` a write that fails if the document changed since ``snap``."""
        if snap.exists:
            batch.update(snap.reference, doc, option=self.client.write_option(last_update_time=snap.update_time))
        else:
            batch.create(snap.reference, doc)

    def commit(self, batch: Any) -> bool:
        """Commit atomically; ``False`` when a precondition lost a race (nothing written)."""
        try:
            batch.commit(**self.call)
        except _LOST_RACE:
            return False
        return True

    def decide_and_write(self, ref: Any, decide: Callable[[Any], tuple[R, Doc | None]]) -> R:
        """Read ``ref``, let ``decide`` pick (result, fields to write), write if unchanged; repeat on a race."""
        for _ in range(self.max_races):
            snap = self.get(ref)
            result, doc = decide(snap)
            if doc is None:
                return result
            batch = self.client.batch()
            self.stage(batch, snap, doc)
            if self.commit(batch):
                return result
        raise DependencyUnavailable(f"Firestore document {ref.path} kept changing under {self.max_races} "
                                    "concurrent updates; the task will be retried")

    def aggregate(self, query: Any) -> int:
        """The value of a ``count()`` or ``sum()`` aggregation query."""
        results = query.get(**self.call)
        return int(results[0][0].value or 0) if results and results[0] else 0


class _Port:
    """What every Firestore port holds: the shared ``FirestoreDatabase``."""

    def __init__(self, db: FirestoreDatabase) -> None:
        self.db = db


# --- the stores -------------------------------------------------------------------------


class FirestoreEffectStore(_Port):
    """``EffectStore``: collection ``idempotency``."""

    def _effect_ref(self, order_id: str, kind: str) -> Any:
        return self.db.ref("idempotency", f"{order_id}:{kind}")

    @_guarded
    def claim_effect(self, order_id: str, kind: str, now: datetime, lease_seconds: float,
                     ttl_seconds: float) -> Claim:
        """See ``EffectStore.claim_effect``."""
        def decide(snap: Any) -> tuple[Claim, Doc | None]:
            claim = rules.claim_transition(_record(EffectRecord, snap), order_id, kind, now, lease_seconds, ttl_seconds)
            return claim, _doc(claim.record) if claim.state is ClaimState.CLAIMED else None
        ref = self._effect_ref(order_id, kind)
        claim = self.db.decide_and_write(ref, decide)
        if claim.state is ClaimState.DONE:
            self._count_duplicate(ref)
        return claim

    @_guarded
    def cancel_effect(self, order_id: str, kind: str, now: datetime, ttl_seconds: float) -> ClaimState:
        """See ``EffectStore.cancel_effect`` (a transaction, like the claim it races with)."""
        def decide(snap: Any) -> tuple[ClaimState, Doc | None]:
            state, record = rules.cancel_transition(_record(EffectRecord, snap), order_id, kind, now, ttl_seconds)
            return state, _doc(record) if record is not None else None
        state: ClaimState = self.db.decide_and_write(self._effect_ref(order_id, kind), decide)
        return state

    def _count_duplicate(self, ref: Any) -> None:
        # A server-side increment: concurrent duplicates never conflict, and a lost count
        # only makes a statistic low, so it is not worth a retry.
        try:
            ref.update({"duplicates": firestore.Increment(1)}, timeout=self.db.timeout)
        except gexc.GoogleAPICallError:
            pass

    @_guarded
    def effect_counts(self) -> dict[str, dict[str, int]]:
        """See ``EffectStore.effect_counts`` (reads every record: an operator's tool, not a hot path)."""
        docs = self.db.collection("idempotency").select(["kind", "state", "duplicates"]).stream(**self.db.call)
        return rules.tally_effects((d.get("kind"), d.get("state"), _maybe(d, "duplicates")) for d in docs)

    @_guarded
    def complete_effect(self, order_id: str, kind: str, result: dict[str, Any], now: datetime, *,
                        duplicate: bool = False) -> None:
        """See ``EffectStore.complete_effect``."""
        ref = self._effect_ref(order_id, kind)
        if duplicate and self._created(ref, _doc(rules.completed(None, order_id, kind, result, now, duplicate))):
            return    # a create-once effect found at its far end usually has no record yet
        # Usually the claim just wrote the record: change it in place, without reading it
        # (the fields rules.completed changes on an existing record; one document read saved).
        changes = {"state": rules.DONE, "lease_expires_at": None, "updated_at": now, "result": dict(result)}
        try:
            ref.update(changes | ({"duplicates": firestore.Increment(1)} if duplicate else {}), **self.db.call)
            return
        except gexc.NotFound:
            pass

        def decide(snap: Any) -> tuple[None, Doc]:
            return None, _doc(rules.completed(_record(EffectRecord, snap), order_id, kind, result, now, duplicate))
        self.db.decide_and_write(ref, decide)

    def _created(self, ref: Any, doc: Doc) -> bool:
        """``create()`` the document; ``False`` if it exists (nothing written)."""
        try:
            ref.create(doc, **self.db.call)
        except gexc.Conflict:
            return False
        return True

    @_guarded
    def release_effect(self, order_id: str, kind: str, now: datetime, failure: AttemptFailure | None = None) -> None:
        """See ``EffectStore.release_effect`` (one read and one precondition-guarded write, as before
        the failure fields: they ride in the same document write)."""
        def decide(snap: Any) -> tuple[None, Doc | None]:
            record = rules.released(_record(EffectRecord, snap), now, failure, order_id, kind)
            return None, _doc(record) if record else None
        self.db.decide_and_write(self._effect_ref(order_id, kind), decide)

    @_guarded
    def get_effect(self, order_id: str, kind: str) -> EffectRecord | None:
        """See ``EffectStore.get_effect``."""
        return _record(EffectRecord, self.db.get(self._effect_ref(order_id, kind)))

    def _effects_of(self, kind: str) -> Any:
        return self.db.collection("idempotency").where(filter=FieldFilter("kind", "==", kind))

    @_guarded
    def count_effects(self, kind: str, state: str | None = None, updated_since: datetime | None = None) -> int:
        """See ``EffectStore.count_effects`` (a ``count()`` aggregation)."""
        query = self._effects_of(kind)
        if state is not None:
            query = query.where(filter=FieldFilter("state", "==", state))
        if updated_since is not None:
            query = query.where(filter=FieldFilter("updated_at", ">=", updated_since))
        return self.db.aggregate(query.count())

    @_guarded
    def duplicates_absorbed(self, kind: str) -> int:
        """See ``EffectStore.duplicates_absorbed`` (a ``sum()`` aggregation)."""
        return self.db.aggregate(self._effects_of(kind).sum("duplicates"))



class FirestoreFailedTaskStore(_Port):
    """``FailedTaskStore``: collection ``failed_tasks``."""

    def _failed(self, snap: Any) -> FailedTask | None:
        return _record(FailedTask, snap, id=snap.id)

    @_guarded
    def record_failure(self, report: FailureReport) -> FailedTask:
        """See ``FailedTaskStore.record_failure``."""
        def decide(snap: Any) -> tuple[FailedTask, Doc]:
            task = rules.failure_appended(self._failed(snap), report)
            return task, _doc(task, skip=("id",)) | {"updated_at": report.failed_at}
        return self.db.decide_and_write(self.db.ref("failed_tasks", f"{report.order_id}:{report.kind}"), decide)

    @_guarded
    def get_failed(self, failed_id: str) -> FailedTask | None:
        """See ``FailedTaskStore.get_failed``."""
        return self._failed(self.db.get(self.db.ref("failed_tasks", failed_id)))

    @_guarded
    def list_failed(self, status: str | None = None, kind: str | None = None, limit: int = 100) -> list[FailedTask]:
        """See ``FailedTaskStore.list_failed``.

        Unfiltered: ordered and limited by Firestore. Filtered: equality filters only (served by
        single-field indexes), so every match is read and sorted here; the log is triage-sized.
        A large log is read page by page with ``page_failed`` (see ``COMPOSITE_INDEXES``).
        """
        query = self.db.collection("failed_tasks")
        for name, value in (("status", status), ("kind", kind)):
            if value is not None:
                query = query.where(filter=FieldFilter(name, "==", value))
        if status is None and kind is None:
            query = query.order_by("last_failed_at", direction=firestore.Query.DESCENDING).limit(limit)
        tasks = [task for task in map(self._failed, query.stream(**self.db.call)) if task is not None]
        return rules.newest_failed_first(tasks)[:limit]

    @_guarded
    def update_failed(self, failed_id: str, status: str, now: datetime, *, expect_status: str | None = None,
                      resolved_by: str | None = None, note: str | None = None, count_replay: bool = False,
                      retention_seconds: float = FAILED_RETENTION_SECONDS) -> FailedTask | None:
        """See ``FailedTaskStore.update_failed``."""
        def decide(snap: Any) -> tuple[FailedTask | None, Doc | None]:
            task = rules.status_changed(self._failed(snap), status, expect_status, resolved_by, note, count_replay,
                                        now, retention_seconds)
            if task is None:
                return None, None
            return task, {"status": task.status, "resolved_by": task.resolved_by, "note": task.note,
                          "replays": task.replays, "updated_at": now, "expire_at": task.expire_at}
        return self.db.decide_and_write(self.db.ref("failed_tasks", failed_id), decide)

    @_guarded
    def resolve_failed(self, failed_id: str, now: datetime, *, resolved_by: str, note: str,
                       retention_seconds: float = FAILED_RETENTION_SECONDS) -> FailedTask | None:
        """See ``FailedTaskStore.resolve_failed``."""
        # Called on every success: the usual "no entry" costs one read and no write.
        def decide(snap: Any) -> tuple[FailedTask | None, Doc | None]:
            task = rules.resolved_on_success(self._failed(snap), resolved_by, note, now, retention_seconds)
            if task is None:
                return None, None
            return task, {"status": task.status, "resolved_by": task.resolved_by, "note": task.note, "updated_at": now,
                          "expire_at": task.expire_at}
        return self.db.decide_and_write(self.db.ref("failed_tasks", failed_id), decide)

    def _failed_query(self, where: FailedFilter) -> Any:
        query = self.db.collection("failed_tasks")
        for name in ("status", "kind", "error_type"):
            if (value := getattr(where, name)) is not None:
                query = query.where(filter=FieldFilter(name, "==", value))
        if where.failed_since is not None:
            query = query.where(filter=FieldFilter("last_failed_at", ">=", where.failed_since))
        if where.failed_before is not None:
            query = query.where(filter=FieldFilter("last_failed_at", "<", where.failed_before))
        return query

    @_guarded
    def count_failed(self, where: FailedFilter) -> int:
        """See ``FailedTaskStore.count_failed`` (a ``count()`` aggregation)."""
        return self.db.aggregate(self._failed_query(where).count())

    @_guarded
    def failed_error_types(self, limit: int = 50) -> list[str]:
        """See ``FailedTaskStore.failed_error_types``: one single-document query per value on
        the automatic ``error_type`` index, reading only that field."""
        found: list[str] = []
        while len(found) < limit:
            query = self.db.collection("failed_tasks")
            if found:
                query = query.where(filter=FieldFilter("error_type", ">", found[-1]))
            snaps = list(query.order_by("error_type").select(["error_type"]).limit(1).stream(**self.db.call))
            if not snaps:
                break
            found.append(snaps[0].get("error_type"))
        return found

    @_guarded
    def page_failed(self, where: FailedFilter, limit: int = 50, cursor: str | None = None) -> FailedPage:
        """See ``FailedTaskStore.page_failed``: ordered, ``limit + 1`` documents read, no more."""
        query = (self._failed_query(where).order_by("last_failed_at", direction=firestore.Query.DESCENDING)
                 .order_by("__name__", direction=firestore.Query.DESCENDING))
        if cursor:
            moment, failed_id = queries.parse_failed_cursor(cursor)
            query = query.start_after({"last_failed_at": moment,
                                       "__name__": self.db.ref("failed_tasks", failed_id)})
        snaps = list(query.limit(limit + 1).stream(**self.db.call))
        tasks = [task for task in map(self._failed, snaps) if task is not None]
        page = tasks[:limit]
        return FailedPage(page, queries.failed_cursor(page[-1]) if len(tasks) > limit and page else None)



class FirestoreAnalyticsStore(_Port):
    """``AnalyticsStore``: ``analytics_orders`` and the ``analytics_daily`` shards."""

    def _shards(self, day: date) -> Any:
        return self.db.ref("analytics_daily", day.isoformat()).collection("shards")

    @_guarded
    def record_order_fact(self, fact: AnalyticsFact, shard: int) -> bool:
        """See ``AnalyticsStore.record_order_fact``: one atomic batch, guarded by the fact's ``create()``."""
        batch = self.db.client.batch()
        batch.create(self.db.ref("analytics_orders", fact.order_id), _doc(fact) | {"shard": shard})
        batch.set(self._shards(fact.day).document(str(shard)), _increments(fact), merge=True)
        try:
            batch.commit(**self.db.call)
        except gexc.Conflict:
            return False      # the fact exists: the whole batch, increments included, was refused
        return True

    @_guarded
    def get_fact(self, order_id: str) -> AnalyticsFact | None:
        """See ``AnalyticsStore.get_fact``."""
        return _record(AnalyticsFact, self.db.get(self.db.ref("analytics_orders", order_id)))

    @_guarded
    def count_facts(self, recorded_since: datetime | None = None) -> int:
        """See ``AnalyticsStore.count_facts`` (a ``count()`` aggregation on a single-field index)."""
        query = self.db.collection("analytics_orders")
        if recorded_since is not None:
            query = query.where(filter=FieldFilter("recorded_at", ">=", recorded_since))
        return self.db.aggregate(query.count())

    @_guarded
    def daily_aggregate(self, day: date) -> DailyAggregate:
        """See ``AnalyticsStore.daily_aggregate``."""
        total = rules.empty_totals(day)
        for snap in self._shards(day).stream(**self.db.call):
            data = _plain(snap.to_dict())
            shard = DailyAggregate(day, data.get("orders", 0), data.get("revenue_minor", {}), data.get("units", {}))
            total = rules.totals_merged(total, shard)
        return total



class FirestoreOrderStore(_Port):
    """``OrderStore``: ``orders`` (with their outbox), legacy ``outbox`` documents, ``checkout_keys``."""

    def __init__(self, db: FirestoreDatabase, outbox_layout: str = "order") -> None:
        """``outbox_layout``: ``"order"`` (the outbox in its order's document) or ``"documents"``
        (one ``outbox/`` document per entry, the layout before 0.2; both are always read)."""
        if outbox_layout not in OUTBOX_LAYOUTS:
            raise ValueError(f"outbox_layout must be one of {', '.join(OUTBOX_LAYOUTS)}, not {outbox_layout!r}")
        super().__init__(db)
        self._outbox_in_order = outbox_layout == "order"

    @_guarded
    def create_order(self, order: OrderRecord) -> bool:
        """See ``OrderStore.create_order``."""
        try:
            # An empty map marks the layout: no legacy outbox documents to look for.
            extra: Doc = {"outbox": {}} if self._outbox_in_order else {}
            self.db.ref("orders", order.order_id).create(_doc(order) | extra, **self.db.call)
        except gexc.Conflict:
            return False
        return True

    @_guarded
    def get_order(self, order_id: str) -> OrderRecord | None:
        """See ``OrderStore.get_order``."""
        return _record(OrderRecord, self.db.get(self.db.ref("orders", order_id)))

    def _outbox_snaps(self, order_id: str) -> list[Any]:
        query = self.db.collection("outbox").where(filter=FieldFilter("order_id", "==", order_id))
        return sorted(query.stream(**self.db.call), key=lambda snap: snap.get("seq"))

    @_guarded
    def mark_paid(self, order_id: str, charge_id: str, outbox: list[OutboxEntry], now: datetime) -> bool:
        """See ``OrderStore.mark_paid``: order and new outbox entries in one atomic batch.

        Unknown order → ``KeyError``.
        """
        order_ref = self.db.ref("orders", order_id)
        for _ in range(self.db.max_races):
            order = self.db.get(order_ref)
            if not order.exists:
                raise KeyError(f"order {order_id} does not exist; create_order first")
            if _maybe(order, "status") == OrderStatus.CANCELLED:
                return False                # a cancel that won the race is never undone
            embedded = _embedded_outbox(order)
            batch = (self._paid_batch(order, charge_id, outbox, now) if embedded is None
                     else self._paid_embedded_batch(order, embedded, charge_id, outbox, now))
            if self.db.commit(batch):
                return True
        raise DependencyUnavailable(f"order {order_id} kept changing while being marked paid; try again")

    def _paid_batch(self, order: Any, charge_id: str, outbox: list[OutboxEntry], now: datetime) -> Any:
        existing = self._outbox_snaps(order.id)
        next_seq = max((snap.get("seq") for snap in existing), default=-1) + 1
        fresh = rules.new_outbox_entries([_record(OutboxEntry, snap) for snap in existing], outbox)  # type: ignore[misc]
        batch = self.db.client.batch()
        # The order's update_time precondition makes a concurrent mark_paid retry with a fresh read.
        self.db.stage(batch, order, {"status": OrderStatus.PAID, "charge_id": charge_id, "paid_at": now})
        for offset, entry in enumerate(fresh):
            batch.create(self.db.ref("outbox", f"{order.id}:{entry.kind}"), _outbox_doc(entry, order.id, next_seq + offset))
        return batch

    def _paid_embedded_batch(self, order: Any, embedded: dict[str, Doc], charge_id: str, outbox: list[OutboxEntry],
                             now: datetime) -> Any:
        existing = _embedded_entries(order.id, embedded)
        next_seq = max((value.get("seq", 0) for value in embedded.values()), default=-1) + 1
        entries = dict(embedded)
        for offset, entry in enumerate(rules.new_outbox_entries(existing, outbox)):
            entries[entry.kind] = _embedded_doc(entry, next_seq + offset)
        batch = self.db.client.batch()
        self.db.stage(batch, order, {"status": OrderStatus.PAID, "charge_id": charge_id, "paid_at": now, "outbox": entries,
                                   "outbox_pending_since": _pending_since(entries), "outbox_audit_at": _audit_at(entries)})
        return batch

    def _update_existing(self, ref: Any, changes: Doc, missing: str) -> None:
        try:
            ref.update(changes, **self.db.call)
        except gexc.NotFound as exc:
            raise KeyError(missing) from exc

    @_guarded
    def mark_payment_failed(self, order_id: str, now: datetime) -> None:
        """See ``OrderStore.mark_payment_failed``; unknown order → ``KeyError``."""
        self._update_existing(self.db.ref("orders", order_id), {"status": OrderStatus.PAYMENT_FAILED},
                              f"order {order_id} does not exist; create_order first")

    @_guarded
    def mark_cancelled(self, order_id: str, now: datetime) -> None:
        """See ``OrderStore.mark_cancelled``; unknown order → ``KeyError``."""
        self._update_existing(self.db.ref("orders", order_id), {"status": OrderStatus.CANCELLED},
                              f"order {order_id} does not exist; create_order first")

    @_guarded
    def mark_scheduled(self, order_id: str, kind: str, now: datetime) -> None:
        """See ``OrderStore.mark_scheduled``; unknown entry → ``KeyError``."""
        self.mark_scheduled_many(order_id, [kind], now)

    @_guarded
    def mark_scheduled_many(self, order_id: str, kinds: list[str], now: datetime) -> None:
        """See ``OrderStore.mark_scheduled_many``: one write for the order's embedded outbox."""
        if not kinds:
            return
        if not (self._outbox_in_order and self.db.decide_and_write(self.db.ref("orders", order_id),
                                                                   self._scheduled_decision(order_id, kinds, now))):
            self._mark_legacy_scheduled(order_id, kinds, now)

    def _scheduled_decision(self, order_id: str, kinds: list[str], now: datetime) -> Callable[[Any], tuple[bool, Doc | None]]:
        def decide(snap: Any) -> tuple[bool, Doc | None]:
            entries = _embedded_outbox(snap)
            if entries is None:
                return False, None          # the legacy layout: its outbox/ documents
            if missing := [kind for kind in kinds if kind not in entries]:
                raise KeyError(f"order {order_id} has no outbox entry {', '.join(missing)}")
            for kind in kinds:
                entries[kind] = entries[kind] | {"state": OutboxState.SCHEDULED, "scheduled_at": now}
            return True, {"outbox": entries, "outbox_pending_since": _pending_since(entries)}
        return decide

    def _mark_legacy_scheduled(self, order_id: str, kinds: list[str], now: datetime) -> None:
        changes = {"state": OutboxState.SCHEDULED, "scheduled_at": now, "pending_since": firestore.DELETE_FIELD}
        batch = self.db.client.batch()
        for kind in kinds:
            batch.update(self.db.ref("outbox", f"{order_id}:{kind}"), changes)
        try:
            batch.commit(**self.db.call)
        except gexc.NotFound as exc:
            raise KeyError(f"order {order_id} has no outbox entry among {', '.join(kinds)}") from exc

    @_guarded
    def outbox_for(self, order_id: str) -> list[OutboxEntry]:
        """See ``OrderStore.outbox_for``: the order document's map, else the legacy documents."""
        if self._outbox_in_order:
            embedded = _embedded_outbox(self.db.get(self.db.ref("orders", order_id)))
            if embedded is not None:
                return _embedded_entries(order_id, embedded)
        return [entry for entry in (_record(OutboxEntry, snap) for snap in self._outbox_snaps(order_id)) if entry]

    @_guarded
    def pending_outbox(self, created_before: datetime, limit: int = 500) -> list[OutboxEntry]:
        """See ``OrderStore.pending_outbox``: single-field range queries on ``orders.outbox_pending_since``
        and on the legacy ``outbox.pending_since``, merged oldest first."""
        query = (self.db.collection("outbox").where(filter=FieldFilter("pending_since", "<", created_before))
                 .order_by("pending_since").limit(limit))
        found = [entry for entry in (_record(OutboxEntry, snap) for snap in query.stream(**self.db.call)) if entry]
        if self._outbox_in_order:
            found += self._embedded_pending(created_before, limit)
        return sorted(found, key=lambda entry: entry.created_at)[:limit]

    def _embedded_pending(self, created_before: datetime, limit: int) -> list[OutboxEntry]:
        query = (self.db.collection("orders").where(filter=FieldFilter("outbox_pending_since", "<", created_before))
                 .order_by("outbox_pending_since").limit(limit))
        pending = []
        for snap in query.stream(**self.db.call):
            for entry in _embedded_entries(snap.id, _embedded_outbox(snap) or {}):
                if entry.state == OutboxState.PENDING and entry.created_at < created_before:
                    pending.append(entry)
        return pending

    @_guarded
    def due_audits(self, now: datetime, limit: int = 500) -> list[OutboxEntry]:
        """See ``OrderStore.due_audits``: range queries on ``orders.outbox_audit_at`` and the
        legacy ``outbox.audit_at``, merged earliest first."""
        query = (self.db.collection("outbox").where(filter=FieldFilter("audit_at", "<=", now))
                 .order_by("audit_at").limit(limit))
        found = [entry for entry in (_record(OutboxEntry, snap) for snap in query.stream(**self.db.call))
                 if entry and entry.settled is None]
        if self._outbox_in_order:
            found += self._embedded_due(now, limit)
        return rules.audit_order(found, limit)

    def _embedded_due(self, now: datetime, limit: int) -> list[OutboxEntry]:
        query = (self.db.collection("orders").where(filter=FieldFilter("outbox_audit_at", "<=", now))
                 .order_by("outbox_audit_at").limit(limit))
        return [entry for snap in query.stream(**self.db.call)
                for entry in _embedded_entries(snap.id, _embedded_outbox(snap) or {})
                if entry.settled is None and entry.audit_at is not None and entry.audit_at <= now]

    def update_audit(self, order_id: str, kind: str, expect_audit_at: datetime, *, audit_at: datetime | None,
                     audits: int | None = None, settled: str | None = None) -> bool:
        """See ``OrderStore.update_audit``."""
        return kind in self.update_audits(order_id, [AuditChange(kind, expect_audit_at, audit_at, audits, settled)])

    @_guarded
    def update_audits(self, order_id: str, changes: list[AuditChange]) -> set[str]:
        """See ``OrderStore.update_audits``: one read-decide-write of the order document under its
        update-time precondition (legacy layout: one per outbox document)."""
        if self._outbox_in_order:
            written = self.db.decide_and_write(self.db.ref("orders", order_id), _embedded_audits(changes))
            if written is not None:
                return written
        return {change.kind for change in changes
                if self.db.decide_and_write(self.db.ref("outbox", f"{order_id}:{change.kind}"), _legacy_audit(change))}

    def _checkout_ref(self, key: str) -> Any:
        # Hashed: a client's Idempotency-Key may hold characters a document id cannot.
        return self.db.ref("checkout_keys", hashlib.sha256(key.encode()).hexdigest())

    @_guarded
    def reserve_checkout(self, key: str, request_hash: str, order_id: str, now: datetime) -> CheckoutReplay | None:
        """See ``OrderStore.reserve_checkout``: ``create()`` is the reservation."""
        ref = self._checkout_ref(key)
        try:
            ref.create(_doc(CheckoutReplay(key, request_hash, order_id, None, None, now)), **self.db.call)
        except gexc.Conflict:
            return _record(CheckoutReplay, self.db.get(ref))
        return None

    @_guarded
    def finish_checkout(self, key: str, status_code: int, response: dict[str, Any]) -> None:
        """See ``OrderStore.finish_checkout``; unknown key → ``KeyError``."""
        self._update_existing(self._checkout_ref(key), {"status_code": status_code, "response": response},
                              f"checkout key {key!r} was never reserved")

    def _orders(self, query: Any) -> list[OrderRecord]:
        return [order for order in (_record(OrderRecord, snap) for snap in query.stream(**self.db.call)) if order]

    @_guarded
    def orders_by_email(self, email: str, limit: int = 20) -> list[OrderRecord]:
        """See ``OrderStore.orders_by_email`` (composite index on the email and ``created_at``)."""
        query = (self.db.collection("orders").where(filter=FieldFilter("snapshot.customer.email", "==", email))
                 .order_by("created_at", direction=firestore.Query.DESCENDING).limit(limit))
        return self._orders(query)

    @_guarded
    def recent_orders(self, limit: int = 20) -> list[OrderRecord]:
        """See ``OrderStore.recent_orders``."""
        return self._orders(self.db.collection("orders").order_by("created_at", direction=firestore.Query.DESCENDING)
                            .limit(limit))


ATTEMPT_SHARDS = 4                    # documents per kind and minute (see FirestoreAttemptLog)
MINUTES_KEPT = timedelta(days=2)      # the overview reads the last hour; a little more for looking back


class FirestoreAttemptLog(_Port):
    """``AttemptLog``: ``effect_attempts`` and the sharded ``attempt_minutes``.

    ``record_attempt`` is one commit of two writes: the attempt (a new document) and
    server-side increments on one of ``shards`` documents of its kind's minute, picked by
    the order id (no read, no contention with other kinds or minutes). Firestore sustains
    about one write a second on a document, so ``shards`` = 4 takes about four attempts a
    second per kind; the overview reads at most kinds x 60 x ``shards`` small documents
    (fewer while traffic is low: a shard exists only once written). Both queries are on one
    field each (``order_id`` equality, ``minute`` range): no composite index.
    """

    def __init__(self, db: FirestoreDatabase, shards: int = ATTEMPT_SHARDS, write_timeout: float = 5.0) -> None:
        """``write_timeout``: how long ``record_attempt`` tries (shorter than the stores' own:
        when Firestore is down the delivery has already waited for its claim, and the log
        must not double that)."""
        super().__init__(db)
        self.shards = max(1, shards)
        seconds = min(write_timeout, db.timeout)
        self._write_retry = Retry(predicate=if_exception_type(*_TRANSIENT), initial=0.1, maximum=1.0,
                                  multiplier=2.0, timeout=seconds)
        self._write_timeout = seconds

    def _minute_ref(self, tally: MinuteTally, order_id: str) -> Any:
        shard = zlib.crc32(order_id.encode()) % self.shards
        return self.db.ref("attempt_minutes", f"{tally.minute:%Y%m%d%H%M}:{tally.kind}:{shard}")

    @_guarded
    def record_attempt(self, attempt: AttemptRecord) -> None:
        """See ``AttemptLog.record_attempt``: one batch, the attempt and its minute's increments."""
        tally = attempt_stats.tally_of(attempt)
        doc_id = f"{attempt.order_id}:{attempt.kind}:{attempt.started_at:%Y%m%dT%H%M%S%f}:{secrets.token_hex(3)}"
        batch = self.db.client.batch()
        batch.set(self.db.ref("effect_attempts", doc_id), _doc(attempt))
        batch.set(self._minute_ref(tally, attempt.order_id), {
            "minute": tally.minute, "kind": tally.kind, "expire_at": tally.minute + MINUTES_KEPT,
            "outcomes": {name: firestore.Increment(n) for name, n in tally.outcomes.items()},
            "durations": {f"b{bucket}": firestore.Increment(n) for bucket, n in tally.durations.items()}}, merge=True)
        batch.commit(retry=self._write_retry, timeout=self._write_timeout)

    @_guarded
    def attempts_for(self, order_id: str, limit: int = 500) -> list[AttemptRecord]:
        """See ``AttemptLog.attempts_for`` (equality on ``order_id``, sorted here)."""
        query = self.db.collection("effect_attempts").where(filter=FieldFilter("order_id", "==", order_id)).limit(limit)
        found = [a for a in (_record(AttemptRecord, snap) for snap in query.stream(**self.db.call)) if a is not None]
        return sorted(found, key=lambda a: (a.started_at, a.kind))

    @_guarded
    def minute_tallies(self, since: datetime, until: datetime) -> list[MinuteTally]:
        """See ``AttemptLog.minute_tallies`` (a range on ``minute``: the minutes' shards only)."""
        query = (self.db.collection("attempt_minutes")
                 .where(filter=FieldFilter("minute", ">=", attempt_stats.minute_of(since)))
                 .where(filter=FieldFilter("minute", "<", attempt_stats.minute_of(until))))
        return attempt_stats.merged(_minute_tally(_plain(snap.to_dict())) for snap in query.stream(**self.db.call))


def _minute_tally(data: Doc) -> MinuteTally:
    """One ``attempt_minutes`` shard document as a tally."""
    durations = {int(name[1:]): int(n) for name, n in (data.get("durations") or {}).items()}
    return MinuteTally(data["kind"], data["minute"], {k: int(n) for k, n in (data.get("outcomes") or {}).items()},
                       durations)


def stores(db: FirestoreDatabase, outbox_layout: str = "order") -> Stores:
    """The store ports on ``db`` (``outbox_layout``: see ``FirestoreOrderStore``)."""
    return Stores(effects=FirestoreEffectStore(db), failed=FirestoreFailedTaskStore(db),
                  analytics=FirestoreAnalyticsStore(db), orders=FirestoreOrderStore(db, outbox_layout),
                  attempts=FirestoreAttemptLog(db))


class FirestoreStore(Stores):
    """The Firestore ports on one client: a ``FirestoreDatabase`` and ``stores(db)`` in one
    step, under the name of the one class that used to serve them all
    (``FirestoreStore(client).effects`` is its ``EffectStore``)."""

    db: FirestoreDatabase

    def __init__(self, client: firestore.Client, prefix: str = "", timeout: float = 30.0,
                 max_races: int = 25, outbox_layout: str = "order") -> None:
        """See ``FirestoreDatabase`` and ``FirestoreOrderStore``."""
        db = FirestoreDatabase(client, prefix, timeout, max_races)
        super().__init__(effects=FirestoreEffectStore(db), failed=FirestoreFailedTaskStore(db),
                         analytics=FirestoreAnalyticsStore(db), orders=FirestoreOrderStore(db, outbox_layout),
                         attempts=FirestoreAttemptLog(db))
        object.__setattr__(self, "db", db)      # a frozen dataclass: set once, here
