"""Meters for ``cloud_cost``: what a run bills in Firestore and Cloud Tasks, counted at the client.

Nothing of ours is patched: the meters wrap the *clients* the benchmark hands to our code.

- ``meter_firestore(client, meter)`` puts a counting proxy in front of the client's GAPIC
  ``FirestoreClient`` (the object every ``DocumentReference``/``Query``/``WriteBatch`` call
  goes through). Counted as Firestore bills them (Standard edition): a document read per
  document a lookup asks for (found or missing, reported apart) and per document a query
  returns, one read for a query that returns none, one read per aggregation query (up to
  1000 index entries); a write per ``Write`` in a commit (field transforms such as
  ``Increment`` ride on their write and are not billed apart), a delete per delete.
  Transactions (``begin_transaction``/``rollback``) are counted as calls; they bill nothing.
- ``MeteredTasksClient(client, meter)`` counts every Cloud Tasks API call made through it
  (each is at least one billable operation) and keeps the tasks it created, so the
  benchmark can deliver them to the handler as Cloud Tasks would (each delivery attempt is
  one more billable operation).

Counts are keyed by collection path with document ids dropped (``analytics_daily/shards``).
A ``Meter(journal=True)`` also keeps every write (and delete) with its document path, the
time it was sent and the sending thread (``Meter.writes``), for ``scale_simulation``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from google.cloud.firestore_v1 import types

DOCUMENTS_MARKER = "/documents/"


class Meter:
    """Thread-safe counters: ``(operation, collection) -> count``, plus API calls by method."""

    def __init__(self, journal: bool = False) -> None:
        self._lock = threading.Lock()
        self.firestore: Counter[tuple[str, str]] = Counter()
        self.calls: Counter[str] = Counter()
        self.journal = journal
        self.writes: list[tuple[float, str, int]] = []   # (time.monotonic(), document path, thread) per write

    def add(self, operation: str, collection: str, count: int = 1) -> None:
        """Count ``count`` billed ``operation``s (read, read_missing, write, delete) on ``collection``."""
        with self._lock:
            self.firestore[(operation, collection)] += count

    def wrote(self, operation: str, document_name: str) -> None:
        """Count one write or delete of ``document_name`` (and journal it when asked to)."""
        with self._lock:
            self.firestore[(operation, collection_of(document_name))] += 1
            if self.journal:
                self.writes.append((time.monotonic(), document_path(document_name), threading.get_ident()))

    def call(self, method: str) -> None:
        """Count one API call of ``method`` (``firestore.commit``, ``tasks.create_task``, ...)."""
        with self._lock:
            self.calls[method] += 1

    def snapshot(self) -> tuple[Counter[tuple[str, str]], Counter[str]]:
        """Copies of both counters (for before/after differences)."""
        with self._lock:
            return Counter(self.firestore), Counter(self.calls)


def collection_of(document_name: str) -> str:
    """``projects/p/databases/d/documents/a/1/b/2`` -> ``a/b`` (the collection path, ids dropped)."""
    path = document_name.split(DOCUMENTS_MARKER, 1)[-1]
    return "/".join(path.split("/")[0::2])


def document_path(document_name: str) -> str:
    """``projects/p/databases/d/documents/a/1/b/2`` -> ``a/1/b/2``."""
    return document_name.split(DOCUMENTS_MARKER, 1)[-1]


def _typed(cls: Any, request: Any) -> Any:
    """The library passes requests as dicts or messages: read both the same way."""
    return cls(request) if isinstance(request, dict) else request


def _query_collection(request: Any) -> str:
    """The collection path a (possibly aggregation) query runs over."""
    query = getattr(request, "structured_query", None) or request.structured_aggregation_query.structured_query
    name = query.from_[0].collection_id if query.from_ else "?"
    return collection_of(f"{request.parent}/{name}/x")


class MeteredFirestoreApi:
    """A counting proxy in front of a GAPIC ``FirestoreClient`` (see the module docstring)."""

    def __init__(self, inner: Any, meter: Meter) -> None:
        self._inner = inner
        self._meter = meter

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._meter.call(f"firestore.{name}")
            return attr(*args, **kwargs)
        return counted

    def commit(self, request: Any = None, **kwargs: Any) -> Any:
        """Count each write (update/set/create) or delete of the commit, then commit."""
        self._meter.call("firestore.commit")
        for write in _typed(types.CommitRequest, request).writes:
            if write.delete:
                self._meter.wrote("delete", write.delete)
            else:
                self._meter.wrote("write", write.update.name or write.transform.document)
        return self._inner.commit(request=request, **kwargs)

    def batch_get_documents(self, request: Any = None, **kwargs: Any) -> Iterator[Any]:
        """Count a read per document asked for (found or missing), as the responses arrive."""
        self._meter.call("firestore.batch_get_documents")
        for response in self._inner.batch_get_documents(request=request, **kwargs):
            if response.found.name:
                self._meter.add("read", collection_of(response.found.name))
            elif response.missing:
                self._meter.add("read_missing", collection_of(response.missing))
            yield response

    def run_query(self, request: Any = None, **kwargs: Any) -> Iterator[Any]:
        """Count a read per document returned, one for a query that returned none."""
        self._meter.call("firestore.run_query")
        collection, returned = _query_collection(_typed(types.RunQueryRequest, request)), 0
        for response in self._inner.run_query(request=request, **kwargs):
            if response.document.name:
                returned += 1
                self._meter.add("read", collection)
            yield response
        if not returned:
            self._meter.add("read_missing", collection)

    def run_aggregation_query(self, request: Any = None, **kwargs: Any) -> Iterable[Any]:
        """One read per aggregation (good up to 1000 index entries, more than a run here reaches)."""
        self._meter.call("firestore.run_aggregation_query")
        self._meter.add("read", _query_collection(_typed(types.RunAggregationQueryRequest, request)))
        return self._inner.run_aggregation_query(request=request, **kwargs)


def meter_firestore(client: Any, meter: Meter) -> Any:
    """Route ``client``'s RPCs through a ``MeteredFirestoreApi``; returns ``client``.

    The one private attribute touched: the client's cached GAPIC client. Checked, so a
    library that renamed it fails here instead of counting nothing.
    """
    inner = client._firestore_api              # builds the GAPIC client (and its channel) once
    if getattr(client, "_firestore_api_internal", None) is not inner:
        raise RuntimeError("google-cloud-firestore no longer caches its API client in _firestore_api_internal; "
                           "update benchmarks/_cloud_meter.py")
    client._firestore_api_internal = MeteredFirestoreApi(inner, meter)
    return client


class MeteredTasksClient:
    """A ``CloudTasksClient`` that counts every call and keeps the tasks it created."""

    def __init__(self, inner: Any, meter: Meter) -> None:
        self._inner = inner
        self._meter = meter
        self._lock = threading.Lock()
        self.created: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._meter.call(f"tasks.{name}")
            return attr(*args, **kwargs)
        return counted

    def create_task(self, *args: Any, **kwargs: Any) -> Any:
        """Count the call; remember the task when Cloud Tasks accepted it."""
        self._meter.call("tasks.create_task")
        created = self._inner.create_task(*args, **kwargs)
        with self._lock:
            self.created.append(kwargs.get("task", created))
        return created

    def take_created(self) -> list[Any]:
        """The tasks created since the last call (and forget them)."""
        with self._lock:
            taken, self.created = self.created, []
        return taken
