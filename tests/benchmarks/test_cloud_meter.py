"""The cloud_cost meters count Firestore operations as Firestore bills them, on the emulator.

The benchmark's figures are only as good as these counts, so each kind of call our
``FirestoreStore`` makes is checked against the number the pricing page says it costs.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from benchmarks._cloud_meter import Meter, MeteredTasksClient, collection_of, meter_firestore

pytestmark = pytest.mark.firestore


@pytest.fixture
def metered(firestore_emulator: str) -> tuple[Any, Meter]:
    from tests.contract.conftest import firestore_client_for, sanitized_project_id

    meter = Meter()
    return meter_firestore(firestore_client_for(sanitized_project_id()), meter), meter


def test_collection_paths_drop_document_ids() -> None:
    assert collection_of("projects/p/databases/(default)/documents/outbox/o1:email") == "outbox"
    assert collection_of("projects/p/databases/(default)/documents/analytics_daily/2026-01-02/shards/3") == \
        "analytics_daily/shards"


def test_create_get_and_missing_get(metered: tuple[Any, Meter]) -> None:
    client, meter = metered
    client.collection("orders").document("a").create({"n": 1})
    client.collection("orders").document("a").get()
    client.collection("orders").document("absent").get()
    assert meter.firestore == {("write", "orders"): 1, ("read", "orders"): 1, ("read_missing", "orders"): 1}
    assert meter.calls["firestore.commit"] == 1 and meter.calls["firestore.batch_get_documents"] == 2


def test_a_batch_bills_each_write_and_increments_ride_on_their_write(metered: tuple[Any, Meter]) -> None:
    from google.cloud import firestore

    client, meter = metered
    batch = client.batch()
    batch.create(client.collection("analytics_orders").document("o1"), {"x": 1})
    batch.set(client.collection("analytics_daily").document("d").collection("shards").document("0"),
              {"orders": firestore.Increment(1), "day": "d"}, merge=True)
    batch.delete(client.collection("outbox").document("gone"))
    batch.commit()
    assert meter.firestore == {("write", "analytics_orders"): 1, ("write", "analytics_daily/shards"): 1,
                               ("delete", "outbox"): 1}


def test_queries_bill_per_document_and_one_for_none(metered: tuple[Any, Meter]) -> None:
    from google.cloud.firestore_v1.base_query import FieldFilter

    client, meter = metered
    for i in range(3):
        client.collection("outbox").document(f"e{i}").create({"order_id": "o1" if i < 2 else "o2"})
    before = meter.firestore[("write", "outbox")]
    assert len(list(client.collection("outbox").where(filter=FieldFilter("order_id", "==", "o1")).stream())) == 2
    list(client.collection("outbox").where(filter=FieldFilter("order_id", "==", "none")).stream())
    assert before == 3
    assert meter.firestore[("read", "outbox")] == 2 and meter.firestore[("read_missing", "outbox")] == 1


def test_tasks_client_counts_calls_and_keeps_created_tasks() -> None:
    class FarEnd:
        def create_task(self, parent: str, task: Any, **_: Any) -> Any:
            return task

        def get_queue(self, name: str) -> str:
            return name

    meter = Meter()
    tasks = MeteredTasksClient(FarEnd(), meter)
    tasks.create_task(parent="q", task="t1")
    tasks.get_queue(name="q")
    assert meter.calls == {"tasks.create_task": 1, "tasks.get_queue": 1}
    assert tasks.take_created() == ["t1"] and tasks.take_created() == []


def test_a_journal_keeps_each_write_with_its_document_path_and_time(firestore_emulator: str) -> None:
    from tests.contract.conftest import firestore_client_for, sanitized_project_id

    meter = Meter(journal=True)
    client = meter_firestore(firestore_client_for(sanitized_project_id()), meter)
    client.collection("orders").document("a").create({"n": 1})
    client.collection("orders").document("a").update({"n": 2})
    client.collection("analytics_daily").document("d").collection("shards").document("3").set({"n": 1})
    assert [path for _, path, _ in meter.writes] == ["orders/a", "orders/a", "analytics_daily/d/shards/3"]
    assert {thread for _, _, thread in meter.writes} == {threading.get_ident()}
    times = [at for at, _, _ in meter.writes]
    assert times == sorted(times)
    assert meter.firestore[("write", "orders")] == 2
