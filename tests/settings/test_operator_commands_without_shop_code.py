"""Operator commands that only read records (or create a replay's task) work on a machine where
the shop's effect modules are not installed; the handler, which runs effects, still refuses to
start without them. Each command runs as an operator types it, in a subprocess, against a real
Cloud Tasks emulator holding the catalog's queues.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.handlers.contract import encode
from ordertasks.handlers.ports import FailureReport
from tests.emulator.conftest import Emulator, start_emulator
from tests.settings.custom_catalog import cli_argv, shell
from tests.support.servers import ServerProcess, free_port, http_ok

MODULE = "shop_code_not_installed.loyalty"
KIND, QUEUE, ORDER = "award_loyalty_points", "ordertasks-loyalty", "ord_noshopcode"
FAILED_ID = f"{ORDER}:{KIND}"
CATALOG = f"""\
extends = "builtin"

[handler]
url = "http://127.0.0.1:9/handler/"     # where replays go: nothing needs to answer here

[queues.{QUEUE}]
max_attempts = 1

[kinds.{KIND}]
queue = "{QUEUE}"
delay_seconds = 0
dispatch_deadline_seconds = 60
effect = "{MODULE}:award_points"
"""


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the shop's catalog (its kind's module absent) and one failed task."""
    directory = tmp_path_factory.mktemp("shop")
    (directory / "tasks.toml").write_text(CATALOG, encoding="utf-8")
    (directory / "var").mkdir()
    store = SqliteStore(directory / "var" / "ordertasks.db")
    store.failed.record_failure(FailureReport(ORDER, KIND, QUEUE, "t-noshopcode", json.loads(encode(KIND, ORDER)),
                                              "Rejected", "loyalty API said 422", 1, datetime.now(UTC)))
    store.close()
    return directory


@pytest.fixture(scope="module")
def emulator(shop: Path) -> Iterator[Emulator]:
    emu = start_emulator(shop, extra=["--queues", str(shop / "tasks.toml")])
    try:
        yield emu
    finally:
        emu.process.stop()


def operator_shell(shop: Path, emulator: Emulator) -> dict[str, str]:
    return shell(shop / "var", ORDERTASKS_CONFIG=str(shop / "tasks.toml"),
                 CLOUD_TASKS_EMULATOR_HOST=f"127.0.0.1:{emulator.port}")


def ordertasks(shop: Path, emulator: Emulator, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_argv(*args), cwd=shop, env=operator_shell(shop, emulator), capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_module_is_really_absent(shop: Path, emulator: Emulator) -> None:
    done = ordertasks(shop, emulator, "handler")

    assert done.returncode == 2, done.stdout + done.stderr
    assert f"module '{MODULE}' does not import" in done.stderr and "Traceback" not in done.stderr
    assert f"{shop / 'tasks.toml'}:" in done.stderr


@pytest.mark.parametrize("args, shown", [(("failed", "list"), FAILED_ID),
                                         (("failed", "show", FAILED_ID), "loyalty API said 422"), (("stats",), KIND)])
def test_a_command_that_reads_records_needs_no_effect_module(shop: Path, emulator: Emulator, args: tuple[str, ...],
                                                             shown: str) -> None:
    done = ordertasks(shop, emulator, *args)

    assert done.returncode == 0, done.stdout + done.stderr
    assert shown in done.stdout
    assert MODULE not in done.stderr


def test_stats_counts_the_shops_queue_through_the_emulator(shop: Path, emulator: Emulator) -> None:
    done = ordertasks(shop, emulator, "stats")

    queue_row = next(line for line in done.stdout.splitlines() if line.startswith(QUEUE))
    assert "unavailable" not in queue_row, done.stdout


def test_a_replay_needs_no_effect_module(shop: Path, emulator: Emulator) -> None:
    """The replay only creates a task; the handler, where the shop's code is, performs it."""
    done = ordertasks(shop, emulator, "failed", "replay", FAILED_ID)

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"{FAILED_ID}: created "), done.stdout
    assert f"/queues/{QUEUE}/tasks/" in done.stdout


def test_the_console_starts(shop: Path, emulator: Emulator) -> None:
    port = free_port()
    console = ServerProcess(cli_argv("console", "--port", str(port)), port, env=operator_shell(shop, emulator),
                            log_path=shop / "console.log", ready=lambda: http_ok(port))
    console.start(timeout=60)
    try:
        assert http_ok(port, "/failed")
    finally:
        console.stop()
