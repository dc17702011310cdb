"""OrderStore contract: orders, their outbox, and checkout Idempotency-Keys."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from ordertasks.handlers.ports import OrderRecord, OrderStore, OutboxEntry, Stores
from tests.contract.clock import T0, at
from tests.contract.concurrency import all_at_once

KINDS = ["send_confirmation_email", "record_analytics", "generate_invoice", "notify_warehouse"]
SNAPSHOT = {"order_id": "o-1", "currency": "EUR", "customer": {"name": "Ana", "email": "ana@example.com"},
            "items": [{"sku": "A.1", "name": "Mug", "quantity": 2, "unit_price": "9.99"}]}


@pytest.fixture
def store(stores: Stores) -> OrderStore:
    """The OrderStore of each backend."""
    return stores.orders


def order(order_id: str = "o-1", seconds: float = 0) -> OrderRecord:
    return OrderRecord(order_id, "created", SNAPSHOT | {"order_id": order_id}, at(seconds))


def outbox(order_id: str = "o-1", created: datetime = T0, kinds: list[str] = KINDS) -> list[OutboxEntry]:
    return [OutboxEntry(order_id, kind, f"projects/p/locations/l/queues/q/tasks/ab-{order_id}-{kind}",
                        at(60 * i), "pending", created) for i, kind in enumerate(kinds)]


def paid(store: Any, order_id: str, seconds: float = 0, kinds: list[str] = KINDS) -> None:
    store.create_order(order(order_id, seconds))
    store.mark_paid(order_id, f"ch_{order_id}", outbox(order_id, at(seconds), kinds), at(seconds))


def test_store_implements_the_port(store: Any) -> None:
    assert isinstance(store, OrderStore)


def test_create_get_and_duplicate(store: Any) -> None:
    assert store.create_order(order()) is True
    assert store.create_order(OrderRecord("o-1", "paid", {}, at(9))) is False
    assert store.get_order("o-1") == order()
    assert store.get_order("o-2") is None


def test_mark_paid_writes_status_and_outbox_together(store: Any) -> None:
    store.create_order(order())
    assert store.mark_paid("o-1", "ch_o-1", outbox("o-1", T0), T0) is True
    assert store.get_order("o-1") == OrderRecord("o-1", "paid", order().snapshot, T0, "ch_o-1", T0)
    assert store.outbox_for("o-1") == outbox()


def test_mark_paid_again_keeps_existing_entries(store: Any) -> None:
    paid(store, "o-1", kinds=KINDS[:2])
    store.mark_scheduled("o-1", KINDS[0], at(1))
    store.mark_paid("o-1", "ch_o-1", outbox(created=at(5)), at(5))
    entries = store.outbox_for("o-1")
    assert [entry.kind for entry in entries] == KINDS
    assert (entries[0].state, entries[0].scheduled_at, entries[0].created_at) == ("scheduled", at(1), T0)
    assert entries[2].created_at == at(5)


def test_mark_paid_of_an_unknown_order_raises_and_writes_nothing(store: Any) -> None:
    with pytest.raises(KeyError):
        store.mark_paid("o-404", "ch", outbox("o-404"), T0)
    assert store.outbox_for("o-404") == []


def test_mark_payment_failed(store: Any) -> None:
    store.create_order(order())
    store.mark_payment_failed("o-1", at(1))
    assert store.get_order("o-1").status == "payment_failed"


def test_mark_scheduled_and_pending_outbox(store: Any) -> None:
    paid(store, "o-1", seconds=0, kinds=KINDS[:2])
    paid(store, "o-2", seconds=10, kinds=KINDS[:1])
    paid(store, "o-3", seconds=20, kinds=KINDS[:1])
    store.mark_scheduled("o-1", KINDS[0], at(30))
    assert store.outbox_for("o-1")[0].state == "scheduled"
    pending = store.pending_outbox(created_before=at(20))
    assert [(entry.order_id, entry.kind) for entry in pending] == [("o-1", KINDS[1]), ("o-2", KINDS[0])]
    assert [entry.order_id for entry in store.pending_outbox(created_before=at(60), limit=2)] == ["o-1", "o-2"]
    assert store.pending_outbox(created_before=T0) == []
    with pytest.raises(KeyError):
        store.mark_scheduled("o-1", "unknown_kind", at(31))


def test_twenty_concurrent_reserves_of_one_key_have_one_winner(store: Any) -> None:
    results = all_at_once(lambda i: store.reserve_checkout("key/ä 1", "h1", f"o-{i}", T0))
    assert Counter(result is None for result in results) == {True: 1, False: 19}
    winner = next(f"o-{i}" for i, result in enumerate(results) if result is None)
    assert {(r.key, r.order_id, r.request_hash, r.status_code, r.response) for r in results if r} == {
        ("key/ä 1", winner, "h1", None, None)}


def test_finished_checkout_replays_its_response(store: Any) -> None:
    assert store.reserve_checkout("k1", "h1", "o-1", T0) is None
    store.finish_checkout("k1", 201, {"order_id": "o-1", "tasks": ["a", "b"]})
    replay = store.reserve_checkout("k1", "h2", "o-2", at(5))
    assert replay is not None
    assert (replay.order_id, replay.request_hash, replay.status_code) == ("o-1", "h1", 201)
    assert (replay.response, replay.created_at) == ({"order_id": "o-1", "tasks": ["a", "b"]}, T0)
    with pytest.raises(KeyError):
        store.finish_checkout("never-reserved", 201, {})


def test_mark_cancelled_sets_the_status_and_needs_the_order(store: Any) -> None:
    paid(store, "o-1")
    store.mark_cancelled("o-1", at(5))
    assert store.get_order("o-1").status == "cancelled"
    with pytest.raises(KeyError):
        store.mark_cancelled("o-missing", at(5))


def test_mark_scheduled_many_marks_all_or_nothing(store: Any) -> None:
    paid(store, "o-1", kinds=KINDS[:3])
    store.mark_scheduled_many("o-1", KINDS[:2], at(30))
    assert [(e.state, e.scheduled_at) for e in store.outbox_for("o-1")] == [
        ("scheduled", at(30)), ("scheduled", at(30)), ("pending", None)]
    assert [(e.order_id, e.kind) for e in store.pending_outbox(created_before=at(60))] == [("o-1", KINDS[2])]
    with pytest.raises(KeyError):
        store.mark_scheduled_many("o-1", [KINDS[2], "unknown_kind"], at(31))
    assert store.outbox_for("o-1")[2].state == "pending"
    store.mark_scheduled_many("o-1", [KINDS[2]], at(32))
    store.mark_scheduled_many("o-1", [], at(33))
    assert store.pending_outbox(created_before=at(60)) == []


def test_mark_paid_never_undoes_a_cancel(store: Any) -> None:
    store.create_order(order())
    store.mark_cancelled("o-1", at(1))
    assert store.mark_paid("o-1", "ch_late", outbox(), at(2)) is False
    assert store.get_order("o-1").status == "cancelled" and store.get_order("o-1").charge_id is None
    assert store.outbox_for("o-1") == [], "a cancelled order owes nothing"
