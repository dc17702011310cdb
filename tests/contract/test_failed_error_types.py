"""``FailedTaskStore.failed_error_types``: the distinct error types present, sorted and bounded
(the console's error-type ``<select>``), over every backend."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.handlers.ports import FailedTaskStore, Stores
from tests.contract.clock import at
from tests.contract.test_failed_task_store import report

TYPES = ["Rejected", "DependencyUnavailable", "Rejected", "InvalidPayload", "Throttled", "Rejected"]


@pytest.fixture
def store(stores: Stores) -> FailedTaskStore:
    """The FailedTaskStore of each backend, holding entries of four error types (one resolved)."""
    for i, error_type in enumerate(TYPES):
        stores.failed.record_failure(replace(report(f"o-{i}", seconds=i), error_type=error_type))
    stores.failed.update_failed("o-4:notify_warehouse", "resolved", at(100), resolved_by="ana", note="ok")
    return stores.failed


def test_each_type_once_sorted(store: Any) -> None:
    assert store.failed_error_types() == ["DependencyUnavailable", "InvalidPayload", "Rejected", "Throttled"]


def test_the_limit_bounds_the_answer(store: Any) -> None:
    assert store.failed_error_types(limit=2) == ["DependencyUnavailable", "InvalidPayload"]


def test_an_empty_log_has_no_types(stores: Stores) -> None:
    assert stores.failed.failed_error_types() == []


def test_sqlite_seeks_the_error_type_index(tmp_path: Path) -> None:
    """Each step is an index search, never a scan of the table."""
    SqliteStore(tmp_path / "store.db").close()
    with sqlite3.connect(tmp_path / "store.db") as conn:
        plan = conn.execute("EXPLAIN QUERY PLAN SELECT MIN(error_type) FROM failed_tasks WHERE error_type > ?",
                            ("Rejected",)).fetchall()
    steps = " ".join(row[-1] for row in plan)
    assert "SEARCH failed_tasks USING COVERING INDEX failed_tasks_error_type" in steps, steps
