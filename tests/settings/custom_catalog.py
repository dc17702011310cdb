"""A shop's own catalog for the tests that check every command reads it: the shipped catalog,
a complete ``[cloud]`` section, plus one queue and one webhook kind the built-in one lacks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ordertasks.infra.config import DEFAULT_CATALOG, REPO_ROOT

CUSTOM_QUEUE, CUSTOM_KIND, CUSTOM_TOKEN = "ordertasks-loyalty", "sync_crm", "CRM_TOKEN"
CLOUD_SECTION = REPO_ROOT / "tests" / "deploy" / "cloud-section.toml"
EXTRA = f"""
[queues.{CUSTOM_QUEUE}]
max_dispatches_per_second = 5
max_burst_size = 5
max_concurrent_dispatches = 5
max_attempts = 3
min_backoff_seconds = 1
max_backoff_seconds = 10
max_doublings = 2

[kinds.{CUSTOM_KIND}]
queue = "{CUSTOM_QUEUE}"
delay_seconds = 0
dispatch_deadline_seconds = 60

[kinds.{CUSTOM_KIND}.webhook]
url = "${{CRM_URL:-https://crm.example.com/orders}}"
token_env = "{CUSTOM_TOKEN}"
"""
BROKEN_KIND = """
[kinds.sync_erp]
queue = "ordertasks-nowhere"
delay_seconds = 0
dispatch_deadline_seconds = 60
"""


def write_custom_catalog(path: Path, *, source: Path = DEFAULT_CATALOG) -> Path:
    """``source`` with the extra queue and webhook kind and a complete ``[cloud]`` section."""
    path.write_text(source.read_text(encoding="utf-8") + EXTRA + "\n" + CLOUD_SECTION.read_text(encoding="utf-8"))
    return path


def write_broken_catalog(path: Path) -> Path:
    """A catalog every command must refuse: one kind names a queue it does not declare."""
    path.write_text(DEFAULT_CATALOG.read_text(encoding="utf-8") + BROKEN_KIND)
    return path


def shell(data_dir: Path, **variables: str) -> dict[str, str]:
    """A shell with no ``ORDERTASKS_*`` of the developer's, local state under ``data_dir``, and
    the checkout's ``cli.py`` importable from any working directory."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ORDERTASKS_", "CLOUD_TASKS_")) and k != "PYTHONPATH"}
    return {**env, "PYTHONPATH": str(REPO_ROOT), "ORDERTASKS_DATA_DIR": str(data_dir), **variables}


def cli_argv(*args: str) -> list[str]:
    """``python -m cli ARGS`` (``PYTHONPATH`` from ``shell`` finds the checkout's ``cli.py``)."""
    return [sys.executable, "-m", "cli", *args]
