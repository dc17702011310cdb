"""The ``ordertasks`` command as an operator runs it: the installed console script in a shell
that has none of the test process's settings, on a data directory of the test's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.handlers.contract import encode
from ordertasks.handlers.ports import FailureReport
from ordertasks.handlers.settings import REPO_ROOT

SCRIPT = Path(sys.executable).parent / "ordertasks"
# The console script a user runs; `python -m ordertasks.cli` where this interpreter has none.
ORDERTASKS = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "ordertasks.cli"]
KIND, QUEUE = "send_confirmation_email", "ordertasks-email"

Cli = Callable[..., subprocess.CompletedProcess[str]]


def operator_shell(data_dir: Path, **variables: str) -> dict[str, str]:
    """A shell whose only ordertasks settings are the data directory and ``variables``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ORDERTASKS_", "CLOUD_TASKS_", "GOOGLE_", "CLOUDSDK_"))}
    return env | {"ORDERTASKS_DATA_DIR": str(data_dir), **variables}


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """``cli(*args, data_dir=…, **variables)``: run ``ordertasks args`` and return what it printed."""
    def run(*args: str, data_dir: Path = tmp_path / "var", **variables: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*ORDERTASKS, *args], env=operator_shell(data_dir, **variables), cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=60, check=False)
    return run


def failed_log(data_dir: Path, statuses: dict[str, str]) -> Path:
    """A data directory whose failed-task log holds one entry per order id, in the given status."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(data_dir / "ordertasks.db")
    start = datetime.now(UTC) - timedelta(hours=1)
    for n, (order_id, status) in enumerate(statuses.items()):
        failed_at = start + timedelta(seconds=n)
        entry = store.failed.record_failure(FailureReport(
            order_id, KIND, QUEUE, f"t-{order_id}", json.loads(encode(KIND, order_id)), "Rejected",
            "the SMTP relay said 550 mailbox unavailable", 1, failed_at))
        if status != "open":
            store.failed.update_failed(entry.id, status, failed_at)
    store.close()
    return data_dir

