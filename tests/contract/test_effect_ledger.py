"""OrderStore contract, the ledger part: which owed effects are due for the auditor, and the
compare-and-set that lets only one auditor act on one of them (over every backend)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ordertasks.handlers.ports import AuditChange, OrderRecord, OrderStore, OutboxEntry, Settled, Stores
from tests.contract.clock import T0, at
from tests.contract.concurrency import all_at_once

KINDS = ["send_confirmation_email", "record_analytics", "generate_invoice"]


@pytest.fixture
def store(stores: Stores) -> OrderStore:
    """The OrderStore of each backend."""
    return stores.orders


def owed(store: Any, order_id: str, audit_after: list[float | None]) -> list[OutboxEntry]:
    """A paid order owing one effect per ``audit_after`` (seconds after T0; ``None``: no audit time)."""
    store.create_order(OrderRecord(order_id, "created", {"order_id": order_id}, T0))
    entries = [OutboxEntry(order_id, kind, f"projects/p/locations/l/queues/q/tasks/ab-{order_id}-{kind}", T0,
                           "scheduled", T0, None, None if due is None else at(due))
               for kind, due in zip(KINDS, audit_after)]
    store.mark_paid(order_id, f"ch_{order_id}", entries, T0)
    return entries


def keys(entries: list[OutboxEntry]) -> list[str]:
    return [f"{entry.order_id}:{entry.kind}" for entry in entries]


def test_a_new_entry_keeps_its_ledger_fields(store: Any) -> None:
    entries = owed(store, "o-1", [10, None])
    assert store.outbox_for("o-1") == entries
    assert (entries[0].audits, entries[0].settled) == (0, None)


def test_due_audits_lists_due_unsettled_entries_earliest_first(store: Any) -> None:
    owed(store, "o-1", [30, 10, None])
    owed(store, "o-2", [20, 5000])
    assert keys(store.due_audits(at(29))) == ["o-1:record_analytics", "o-2:send_confirmation_email"]
    assert keys(store.due_audits(at(30))) == ["o-1:record_analytics", "o-2:send_confirmation_email",
                                              "o-1:send_confirmation_email"]
    assert keys(store.due_audits(at(30), limit=2)) == ["o-1:record_analytics", "o-2:send_confirmation_email"]
    assert store.due_audits(at(4)) == []


def test_update_audit_moves_counts_and_settles(store: Any) -> None:
    first = owed(store, "o-1", [10, 20])[0]
    assert store.update_audit("o-1", first.kind, at(10), audit_at=at(100), audits=1) is True
    moved = store.outbox_for("o-1")[0]
    assert moved == replace(first, audit_at=at(100), audits=1)
    assert keys(store.due_audits(at(50))) == ["o-1:record_analytics"]
    assert store.update_audit("o-1", first.kind, at(100), audit_at=None, settled=Settled.DONE) is True
    settled = store.outbox_for("o-1")[0]
    assert (settled.audit_at, settled.audits, settled.settled) == (None, 1, "done")
    assert keys(store.due_audits(at(10**6))) == ["o-1:record_analytics"]


def test_update_audit_refuses_a_stale_expectation(store: Any) -> None:
    first = owed(store, "o-1", [10])[0]
    assert store.update_audit("o-1", first.kind, at(11), audit_at=at(100)) is False
    assert store.update_audit("o-1", "no_such_kind", at(10), audit_at=at(100)) is False
    assert store.update_audit("o-404", first.kind, at(10), audit_at=at(100)) is False
    assert store.outbox_for("o-1") == [first]


def test_of_concurrent_auditors_one_wins(store: Any) -> None:
    first = owed(store, "o-1", [10, 10])[0]
    won = all_at_once(lambda i: store.update_audit("o-1", first.kind, at(10), audit_at=at(100 + i), audits=1),
                      threads=8)
    assert won.count(True) == 1
    winner = won.index(True)
    assert store.outbox_for("o-1")[0].audit_at == at(100 + winner)
    assert store.outbox_for("o-1")[1].audit_at == at(10)      # the other entry is untouched


def test_settled_entries_are_never_due_again(store: Any) -> None:
    entries = owed(store, "o-1", [10, 10, 10])
    for entry in entries:
        store.update_audit("o-1", entry.kind, at(10), audit_at=None, settled=Settled.CANCELLED)
    assert store.due_audits(at(10**6)) == []
    assert {e.settled for e in store.outbox_for("o-1")} == {"cancelled"}


def test_update_audits_changes_several_entries_each_on_its_own_expectation(store: Any) -> None:
    entries = owed(store, "o-1", [10, 20, 30])
    written = store.update_audits("o-1", [AuditChange(entries[0].kind, at(10), None, settled=Settled.DONE),
                                          AuditChange(entries[1].kind, at(99), None, settled=Settled.DONE),
                                          AuditChange(entries[2].kind, at(30), at(500), audits=2)])
    assert written == {entries[0].kind, entries[2].kind}
    after = store.outbox_for("o-1")
    assert (after[0].settled, after[0].audit_at) == ("done", None)
    assert after[1] == entries[1], "a stale expectation changes nothing"
    assert (after[2].audits, after[2].audit_at) == (2, at(500))
    assert store.update_audits("o-404", [AuditChange(entries[0].kind, at(10), None)]) == set()
