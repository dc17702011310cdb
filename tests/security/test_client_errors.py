"""Items 8 and 10: clients get our own 4xx messages, never backend internals; duplicate JSON keys are refused."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from ordertasks.handlers.backends.sqlite import SqliteStore
from tests.contract.conftest import firestore_client_for, sanitized_project_id
from tests.security.checkout_app import checkout_app
from tests.support.samples import EUR_CHECKOUT_BODY
from tests.support.stores import locked_sqlite

INTERNALS = ("Firestore", "firestore", "InvalidArgument", "roles/", "datastore", "sqlite", "SQLite", "locked",
             "Traceback", ".db")


def assert_no_internals(text: str) -> None:
    leaked = [word for word in INTERNALS if word in text]
    assert leaked == [], f"backend detail reached the client: {leaked} in {text!r}"


@pytest.fixture
def firestore_checkout(tmp_path: Path, firestore_emulator: str) -> Flask:
    """The checkout over Firestore (the emulator)."""
    from ordertasks.handlers.backends.firestore import FirestoreStore

    return checkout_app(tmp_path, FirestoreStore(firestore_client_for(sanitized_project_id()), timeout=10.0))


@pytest.mark.firestore
@pytest.mark.parametrize("order_id", ["__x__", "__name__", "..", "x" * 1600, "%C3%A9"])
def test_reserved_or_malformed_order_ids_are_404_with_our_message(firestore_checkout: Flask, order_id: str) -> None:
    """Attack: GET /api/orders/__x__ on Firestore answered 503 quoting the backend error and the IAM role."""
    resp = firestore_checkout.test_client().get(f"/api/orders/{order_id}")
    assert resp.status_code in (400, 404), resp.get_data(as_text=True)
    assert resp.get_json()["error"]["code"] == "order_not_found"
    assert_no_internals(resp.get_data(as_text=True))


@pytest.fixture
def locked_store(tmp_path: Path) -> Iterator[SqliteStore]:
    """An order store whose database another process holds locked: every call is unavailable."""
    with locked_sqlite(tmp_path / "orders.db", busy_timeout=0.05) as store:
        yield store


def test_an_unavailable_store_answers_503_without_its_detail(tmp_path: Path, locked_store: SqliteStore,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """Attack: a store outage answered with the backend's own error text (paths, lock state, roles)."""
    app = checkout_app(tmp_path, locked_store)
    with caplog.at_level(logging.WARNING):
        resp = post(app, json.dumps(EUR_CHECKOUT_BODY))
    assert resp.status_code == 503 and resp.headers["Retry-After"]
    assert resp.get_json()["error"]["code"] == "unavailable"
    assert_no_internals(resp.get_data(as_text=True))
    assert any("locked" in record.getMessage() for record in caplog.records), "the detail must still be logged"


def post(app: Flask, raw: str) -> Any:
    return app.test_client().post("/api/checkout", data=raw, content_type="application/json")


@pytest.mark.parametrize("raw, key", [
    ('{"currency": "EUR", "currency": "USD"}', "currency"),
    (json.dumps(EUR_CHECKOUT_BODY)[:-1] + ', "payment_token": "tok_chargeDeclined"}', "payment_token"),
    ('{"customer": {"email": "a@example.com", "email": "b@example.com"}}', "email"),
    ('{"items": [{"sku": "MUG-1", "quantity": 1, "quantity": 1000}]}', "quantity"),
])
def test_a_body_with_duplicate_keys_is_400_naming_the_key(tmp_path: Path, raw: str, key: str) -> None:
    """Attack: duplicate keys let a body mean one thing to a validating proxy and another to us."""
    app = checkout_app(tmp_path, SqliteStore(tmp_path / "orders.db"))
    resp = post(app, raw)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    error = resp.get_json()["error"]
    assert error["code"] == "duplicate_key" and repr(key) in error["message"]
    assert error["fields"] == [{"field": key, "message": "duplicate key"}]


def test_the_same_key_in_different_objects_is_fine(tmp_path: Path) -> None:
    """Attack: none; "name" in customer and in an item are different keys."""
    app = checkout_app(tmp_path, SqliteStore(tmp_path / "orders.db"))
    resp = post(app, '{"customer": {"name": "A"}, "items": [{"name": "B"}]}')
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "invalid_request"
