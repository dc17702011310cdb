"""The checkout flow over the Firestore emulator (the cloud store) and the Cloud Tasks emulator.

The client is built here, not by the shared ``firestore_client`` fixture: that fixture's
project ids keep underscores from test names, which the Firestore emulator refuses.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from ordertasks.handlers.config import load_catalog
from ordertasks.handlers.backends.firestore import FirestoreStore
from ordertasks.producer.reconcile import reconcile
from tests.producer.conftest import CATALOG, Emulator, build_stack, order_body


KINDS = tuple(load_catalog(CATALOG).kinds)  # counts derive from the catalog under test

pytestmark = pytest.mark.firestore


@pytest.fixture
def firestore_store(firestore_emulator: str) -> FirestoreStore:
    """A Firestore store in a fresh project on the session's Firestore emulator."""
    client = firestore.Client(project=f"producer-{uuid.uuid4().hex[:16]}", credentials=AnonymousCredentials())
    return FirestoreStore(client, timeout=20.0)


def test_checkout_replay_and_order_view_over_firestore(tmp_path: Path, emulator: Emulator,
                                                       firestore_store: FirestoreStore) -> None:
    stack = build_stack(tmp_path, emulator, store=firestore_store)
    try:
        first = stack.client.post("/api/checkout", json=order_body(), headers={"Idempotency-Key": "fs-1"})
        assert first.status_code == 201, first.get_json()
        again = stack.client.post("/api/checkout", json=order_body(), headers={"Idempotency-Key": "fs-1"})
        # Equal but for the cancel token, which a replay hands out anew (never stored in the answer).
        assert {k: v for k, v in again.get_json().items() if k != "cancel_token"} == \
            {k: v for k, v in first.get_json().items() if k != "cancel_token"}
        other = stack.client.post("/api/checkout", json=order_body(currency="GBP"), headers={"Idempotency-Key": "fs-1"})
        assert other.status_code == 422
        order_id = first.get_json()["order_id"]
        assert len(stack.tasks()) == len(KINDS)
        assert len(stack.gateway.charges()) == 1
        view = stack.client.get(f"/api/orders/{order_id}").get_json()
        assert view["status"] == "paid"
        assert [t["state"] for t in view["tasks"]] == ["scheduled"] * len(KINDS)
    finally:
        stack.enqueuer.close()


def test_outage_then_reconcile_over_firestore(tmp_path: Path, emulator: Emulator,
                                              firestore_store: FirestoreStore) -> None:
    store = firestore_store
    stack = build_stack(tmp_path, emulator, store=store)
    try:
        emulator.stop()
        assert stack.client.post("/api/checkout", json=order_body()).status_code == 202
        emulator.start()
        summary = reconcile(store.orders, stack.enqueuer, datetime.now(timezone.utc), grace_seconds=0)
        assert (summary.pending, summary.scheduled, summary.failed) == (len(KINDS), len(KINDS), 0)
        assert reconcile(store.orders, stack.enqueuer, datetime.now(timezone.utc), grace_seconds=0).pending == 0
        assert len({t.name for t in stack.tasks()}) == len(stack.tasks()) == len(KINDS)
    finally:
        stack.enqueuer.close()
