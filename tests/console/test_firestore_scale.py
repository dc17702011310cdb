"""On Firestore the console's pages cost a bounded number of document reads, whatever the
size of the stores: 10 000 idempotency records and 120 failed tasks, every read counted by
wrapping the Firestore client the store is given (no patching)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ordertasks.handlers.backends.firestore import FirestoreStore
from ordertasks.handlers.ports import OrderRecord, OutboxEntry
from ordertasks.infra.config import Settings
from ordertasks.handlers.settings import Backend, StoreSettings, TasksSettings
from ordertasks.infra.console import Console, create_app
from ordertasks.producer import wiring
from ordertasks.producer.enqueue import Enqueuer, task_name
from ordertasks.producer.failure_groups import GROUP_BOUND
from ordertasks.producer.triage import triage_for
from tests.console.conftest import failure
from tests.contract.conftest import firestore_client_for, sanitized_project_id
from tests.emulator.conftest import Emulator

pytestmark = pytest.mark.firestore

EFFECTS, FAILED, ORDERS = 10_000, 120, 30
PAGE_BUDGET = 100          # documents one page may read


@dataclass
class Reads:
    """Documents read and aggregation queries run, as Firestore bills them."""

    documents: int = 0
    aggregations: int = 0
    log: list[str] = field(default_factory=list)


def _unwrap(value: Any) -> Any:
    if isinstance(value, Counted):
        return value._target
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    return value


class Counted:
    """A Firestore client, collection, query or document reference that counts what it reads."""

    def __init__(self, target: Any, reads: Reads) -> None:
        self._target, self._reads = target, reads

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*_unwrap(args), **_unwrap(kwargs))
            return self._account(name, result)
        return call

    def _account(self, name: str, result: Any) -> Any:
        kind = type(result).__name__
        if name == "stream":
            return self._counted_stream(result)
        if name == "get" and kind == "DocumentSnapshot":
            self._reads.documents += 1
            return result
        if name == "get" and "Aggregation" in type(self._target).__name__:
            self._reads.aggregations += 1
            return result
        if kind in ("CollectionReference", "Query", "DocumentReference", "AggregationQuery"):
            return Counted(result, self._reads)
        return result

    def _counted_stream(self, stream: Iterator[Any]) -> Iterator[Any]:
        for snap in stream:
            self._reads.documents += 1
            yield snap


@pytest.fixture
def firestore_console(firestore_emulator: str, tasks_emulator: Emulator, catalog_path: Any,
                      tmp_path: Any) -> Iterator[tuple[Any, Reads, Console]]:
    raw = firestore_client_for(sanitized_project_id())
    seed(raw, Settings(catalog_path=catalog_path).catalog())
    reads = Reads()
    store = FirestoreStore(Counted(raw, reads), timeout=20.0)
    settings = Settings(backend=Backend.LOCAL, catalog_path=catalog_path, store=StoreSettings(data_dir=tmp_path),
                        tasks=TasksSettings(emulator_host=f"127.0.0.1:{tasks_emulator.port}"))
    catalog = settings.catalog()
    tasks = wiring.tasks_client(settings)
    console = Console(catalog, store.effects, store.failed, store.orders, tasks, wiring.clock(),
                      triage_for(store.failed, Enqueuer(tasks, settings, catalog)), "firestore emulator")
    yield create_app(console).test_client(), reads, console


def seed(client: Any, catalog: Any) -> None:
    """10 000 done effects spread over the catalog's kinds, 120 failures, 30 orders."""
    now, kinds = datetime.now(UTC), list(catalog.kinds)
    batch, pending = client.batch(), 0
    for i in range(EFFECTS):
        kind = kinds[i % len(kinds)]
        batch.set(client.collection("idempotency").document(f"o-{i}:{kind}"), {
            "order_id": f"o-{i}", "kind": kind, "state": "done", "attempts": 1, "lease_expires_at": None,
            "first_attempt_at": now, "updated_at": now - timedelta(minutes=i % 120), "expire_at": now + timedelta(days=35),
            "result": {}, "duplicates": 0})
        pending += 1
        if pending == 500:
            batch.commit()
            batch, pending = client.batch(), 0
    batch.commit()
    store = FirestoreStore(client)
    for i in range(FAILED):
        store.failed.record_failure(failure(f"f-{i}", "notify_warehouse", catalog=catalog))
    for i in range(ORDERS):
        store.orders.create_order(OrderRecord(f"ord-{i}", "paid", {"customer": {"name": "A", "email": f"c{i % 3}@example.com"}},
                                       now - timedelta(minutes=i)))
    entries = [OutboxEntry("ord-0", k, task_name(catalog.project, catalog.region, c.queue, "ord-0", k), now, "pending", now)
               for k, c in catalog.kinds.items()]
    store.orders.mark_paid("ord-0", "ch", entries, now)


def measure(client: Any, reads: Reads, path: str) -> tuple[str, int, int]:
    before_docs, before_aggs = reads.documents, reads.aggregations
    page = client.get(path)
    assert page.status_code == 200, page.text[:500]
    return page.text, reads.documents - before_docs, reads.aggregations - before_aggs


def test_pages_read_a_bounded_number_of_documents(firestore_console: tuple[Any, Reads, Console]) -> None:
    client, reads, console = firestore_console
    kinds = list(console.catalog.kinds)
    text, docs, aggregations = measure(client, reads, "/")
    per_kind = math.ceil(EFFECTS / len(kinds))
    assert re.search(rf">\s*{per_kind}\s*<", text), "the overview shows the per-kind count of 10 000 records"
    assert docs == 0 and aggregations > 0
    seen = {"/": docs}
    for path in ("/queues", "/failed", "/failed?kind=notify_warehouse&status=open", "/failed/f-0:notify_warehouse",
                 "/failed/bulk-replay?kind=notify_warehouse", "/failed/groups", "/orders", "/orders?q=c1@example.com",
                 "/orders/ord-0"):
        text, docs, _ = measure(client, reads, path)
        seen[path] = docs
        assert docs < PAGE_BUDGET or path.startswith(("/failed/bulk-replay", "/failed/groups")), f"{path} read {docs}"
    assert seen["/failed"] == 51 + 1       # a page of 50, one to know there is more, one per error type (a select)
    assert seen["/failed/groups"] <= FAILED + 1 <= GROUP_BOUND + 1          # the open entries, never the log
    assert "<strong>120</strong> matching" in client.get("/failed").text
    assert seen["/failed/bulk-replay?kind=notify_warehouse"] <= FAILED + 1
    print(f"documents read per page: {seen}; aggregation queries: {reads.aggregations}")
    total = sum(seen.values())
    assert total < EFFECTS / 20, f"{total} documents read for {len(seen)} pages"
