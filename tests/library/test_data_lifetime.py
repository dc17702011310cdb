"""How long personal data lives (docs/data.md): a resolved failed-task entry gets an
``expire_at`` from the catalog's ``[failed_tasks] retention_days`` (default 90), whether a
person resolves it (``ordertasks failed resolve``) or a later success does; ``deploy plan``
puts a Firestore TTL on it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.handlers.config import CatalogError, load_catalog
from ordertasks.handlers.ports import FailureReport
from ordertasks.infra.config import DEFAULT_CATALOG, REPO_ROOT
from ordertasks.infra.deploy._data import TTL_FIELDS
from tests.functions.conftest import HandlerStack, stack  # noqa: F401 - the handler stack fixture

KIND = "notify_warehouse"


def catalog_with_retention(tmp_path: Path, line: str) -> Path:
    text = DEFAULT_CATALOG.read_text(encoding="utf-8")
    path = tmp_path / "tasks.toml"
    path.write_text(text.replace("retention_days = 90", line), encoding="utf-8")
    return path


def test_the_shipped_catalog_keeps_resolved_entries_90_days() -> None:
    assert load_catalog(DEFAULT_CATALOG).failed_retention_days == 90


def test_the_catalog_sets_the_retention(tmp_path: Path) -> None:
    assert load_catalog(catalog_with_retention(tmp_path, "retention_days = 7")).failed_retention_days == 7


@pytest.mark.parametrize("value", ["0", "-3", "1.5", '"30"', "true"])
def test_a_bad_retention_is_refused_naming_file_and_line(tmp_path: Path, value: str) -> None:
    path = catalog_with_retention(tmp_path, f"retention_days = {value}")
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("retention_days"))
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    assert f"{path}:{line}: [failed_tasks] retention_days = " in str(caught.value)
    assert "whole number of days >= 1" in str(caught.value)


def test_failed_resolve_sets_expire_at_from_the_catalog(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "ordertasks.db")
    store.failed.record_failure(FailureReport("ord_ttl", KIND, "ordertasks-warehouse", "t", {}, "Rejected",
                                       "warehouse answered 400 for ada@example.com", 1, datetime.now(UTC)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERTASKS_", "CLOUD_TASKS_"))}
    env |= {"ORDERTASKS_DATA_DIR": str(tmp_path),
            "ORDERTASKS_CONFIG": str(catalog_with_retention(tmp_path, "retention_days = 7"))}
    before = datetime.now(UTC)
    done = subprocess.run([sys.executable, "-m", "ordertasks.cli", "failed", "resolve", f"ord_ttl:{KIND}",
                           "--note", "customer refunded"], env=env, cwd=REPO_ROOT, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    expire_at = store.failed.get_failed(f"ord_ttl:{KIND}").expire_at
    assert before + timedelta(days=7) <= expire_at <= datetime.now(UTC) + timedelta(days=7)


def test_a_later_success_resolves_the_entry_with_the_catalog_retention(stack: HandlerStack) -> None:
    order = "ord_ttl_success"
    stack.store.failed.record_failure(FailureReport(order, KIND, "warehouse", "t", {}, "DependencyUnavailable", "503", 1,
                                             datetime.now(UTC)))
    before = datetime.now(UTC)
    assert stack.deliver(stack.task(KIND, order)).json()["outcome"] == "done"
    closed = stack.store.failed.get_failed(f"{order}:{KIND}")
    days = load_catalog(DEFAULT_CATALOG).failed_retention_days
    assert closed.status == "resolved"
    assert before + timedelta(days=days) <= closed.expire_at <= datetime.now(UTC) + timedelta(days=days)


def test_deploy_puts_a_firestore_ttl_on_every_expiring_collection() -> None:
    """Claims, resolved failed-task entries and the console's attempt log and per-minute counters."""
    assert set(TTL_FIELDS) == {("idempotency", "expire_at"), ("failed_tasks", "expire_at"),
                               ("effect_attempts", "expire_at"), ("attempt_minutes", "expire_at")}
