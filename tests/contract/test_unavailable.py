"""A store that cannot be reached raises DependencyUnavailable (the handler then answers 503)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.handlers.errors import DependencyUnavailable
from ordertasks.handlers.ports import AnalyticsFact, FailureReport, OrderRecord
from tests.contract.clock import T0
from tests.contract.conftest import firestore_client_for, sanitized_project_id
from tests.support.servers import free_port
from tests.support.stores import locked_sqlite as locked_sqlite_file

CALLS: dict[str, Callable[[Any], object]] = {
    "claim_effect": lambda s: s.effects.claim_effect("o-1", "generate_invoice", T0, 60, 3600),
    "record_failure": lambda s: s.failed.record_failure(FailureReport("o-1", "generate_invoice", "invoices", "t", {},
                                                               "DependencyUnavailable", "down", 1, T0)),
    "update_failed": lambda s: s.failed.update_failed("o-1:generate_invoice", "resolved", T0),
    "record_order_fact": lambda s: s.analytics.record_order_fact(AnalyticsFact("o-1", T0.date(), "EUR", 1, {}, T0), 0),
    "create_order": lambda s: s.orders.create_order(OrderRecord("o-1", "created", {}, T0)),
    "reserve_checkout": lambda s: s.orders.reserve_checkout("k", "h", "o-1", T0),
}


def test_sqlite_in_a_missing_directory_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DependencyUnavailable, match="writable"):
        SqliteStore(tmp_path / "no-such-dir" / "store.db")


@pytest.fixture
def locked_sqlite(tmp_path: Path) -> Iterator[SqliteStore]:
    """A store whose database another connection holds an exclusive lock on."""
    with locked_sqlite_file(tmp_path / "store.db", busy_timeout=0.1) as store:
        yield store


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_locked_sqlite_is_unavailable(locked_sqlite: SqliteStore, call: Callable[[Any], object]) -> None:
    with pytest.raises(DependencyUnavailable, match="locked"):
        call(locked_sqlite)


@pytest.fixture
def unreachable_firestore(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A Firestore store whose client points at a port nothing listens on (no emulator needed)."""
    from ordertasks.handlers.backends.firestore import FirestoreStore

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    return FirestoreStore(firestore_client_for(sanitized_project_id()), timeout=0.5)


@pytest.mark.parametrize("call", [*CALLS.values(), lambda s: s.failed.list_failed(status="open"),
                                  lambda s: s.analytics.daily_aggregate(T0.date())],
                         ids=[*CALLS.keys(), "list_failed", "daily_aggregate"])
def test_unreachable_firestore_is_unavailable_quickly(unreachable_firestore: Any, call: Callable[[Any], object]) -> None:
    started = time.monotonic()
    with pytest.raises(DependencyUnavailable, match="Firestore unavailable"):
        call(unreachable_firestore)
    assert time.monotonic() - started < 5
