"""Firestore keeps an order's outbox in the order's document; orders of the old layout
(one ``outbox/`` document per entry) keep working: read, marked, reconciled.

The OrderStore contract (``test_order_store.py``) runs on the new layout; here an order is
written by a store of the old layout (``outbox_layout="documents"``, what earlier versions
wrote) and then served by a store of the new one, on the same database.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.clock import at
from tests.contract.test_order_store import KINDS, outbox, paid

pytestmark = pytest.mark.firestore


@pytest.fixture
def stores(firestore_emulator: str) -> tuple[Any, Any]:
    from ordertasks.handlers.backends.firestore import FirestoreDatabase, FirestoreOrderStore
    from tests.contract.conftest import firestore_client_for, sanitized_project_id

    db = FirestoreDatabase(firestore_client_for(sanitized_project_id()), timeout=20.0)
    return FirestoreOrderStore(db, outbox_layout="documents"), FirestoreOrderStore(db)


def test_the_new_layout_writes_no_outbox_documents(stores: tuple[Any, Any]) -> None:
    _, new = stores
    paid(new, "o-new", kinds=KINDS)
    new.mark_scheduled_many("o-new", KINDS[:1], at(1))
    assert list(new.db.client.collection("outbox").stream()) == []
    stored = new.db.client.collection("orders").document("o-new").get().to_dict()
    assert set(stored["outbox"]) == set(KINDS) and stored["outbox"][KINDS[0]]["state"] == "scheduled"


def test_an_order_of_the_old_layout_is_read_marked_and_reconciled(stores: tuple[Any, Any]) -> None:
    old, new = stores
    paid(old, "o-old", seconds=0, kinds=KINDS[:2])
    paid(new, "o-new", seconds=10, kinds=KINDS[:1])
    assert new.outbox_for("o-old") == outbox("o-old", at(0), KINDS[:2])
    pending = [(e.order_id, e.kind) for e in new.pending_outbox(created_before=at(60))]
    # Oldest first; entries created at the same moment come in no promised order.
    assert sorted(pending[:2]) == sorted([("o-old", KINDS[0]), ("o-old", KINDS[1])])
    assert pending[2:] == [("o-new", KINDS[0])]
    new.mark_scheduled_many("o-old", KINDS[:1], at(20))
    new.mark_scheduled("o-old", KINDS[1], at(21))
    assert [e.state for e in new.outbox_for("o-old")] == ["scheduled", "scheduled"]
    assert [(e.order_id, e.kind) for e in new.pending_outbox(created_before=at(60))] == [("o-new", KINDS[0])]
    new.mark_paid("o-old", "ch_o-old", outbox("o-old", at(30), KINDS), at(30))   # a resumed checkout
    assert [e.kind for e in new.outbox_for("o-old")] == KINDS
    with pytest.raises(KeyError):
        new.mark_scheduled("o-old", "unknown_kind", at(31))


def test_the_ledger_of_an_old_layout_order_is_audited_and_settled(stores: tuple[Any, Any]) -> None:
    old, new = stores
    from ordertasks.handlers.ports import OrderRecord, OutboxEntry

    old.create_order(OrderRecord("o-old", "created", {}, at(0)))
    entries = [OutboxEntry("o-old", kind, f"projects/p/locations/l/queues/q/tasks/ab-o-old-{kind}", at(0), "scheduled",
                           at(0), None, at(10 + i)) for i, kind in enumerate(KINDS[:2])]
    old.mark_paid("o-old", "ch", entries, at(0))
    assert [(e.order_id, e.kind) for e in new.due_audits(at(10))] == [("o-old", KINDS[0])]
    assert new.update_audit("o-old", KINDS[0], at(10), audit_at=None, settled="done") is True
    assert new.update_audit("o-old", KINDS[1], at(99), audit_at=None, settled="done") is False
    assert [(e.order_id, e.kind) for e in new.due_audits(at(60))] == [("o-old", KINDS[1])]
    assert new.outbox_for("o-old")[0].settled == "done"


def test_an_unknown_layout_is_refused(firestore_emulator: str) -> None:
    from ordertasks.handlers.backends.firestore import FirestoreStore
    from tests.contract.conftest import firestore_client_for

    with pytest.raises(ValueError, match="outbox_layout"):
        FirestoreStore(firestore_client_for("contract-layout"), outbox_layout="inline")
