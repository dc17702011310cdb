"""A command that needs the local stack and cannot find it says so in one line, within seconds:
what it tried, and how to start the stack. A data directory without ordertasks data is a
mistyped one unless ``--init`` says to start from an empty store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, failed_log
from tests.support.servers import free_port

# Commands that talk to Cloud Tasks, with what each needs to get that far.
TALK_TO_CLOUD_TASKS = [["stats"], ["sweep"], ["reconcile"], ["failed", "replay", "ord_1:send_confirmation_email"]]
# Commands that only read: each refuses a data directory that holds no ordertasks data.
READ = [["failed", "list"], ["failed", "show", "ord_1:send_confirmation_email"], ["stats"], ["sweep"], ["reconcile"],
        ["products", "list"], ["console", "--port", "0"]]


@pytest.mark.parametrize("args", TALK_TO_CLOUD_TASKS, ids=" ".join)
def test_a_stack_that_is_down_is_one_line_within_seconds(cli: Cli, tmp_path: Path, args: list[str]) -> None:
    data_dir = failed_log(tmp_path / "var", {"ord_1": "open"})
    nothing_listens = f"127.0.0.1:{free_port()}"

    started = time.monotonic()
    done = cli(*args, data_dir=data_dir, CLOUD_TASKS_EMULATOR_HOST=nothing_listens)
    elapsed = time.monotonic() - started

    assert done.returncode == 1, done.stdout + done.stderr
    assert elapsed < 5, f"took {elapsed:.1f}s"
    assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"ordertasks {args[0]}: cannot reach the Cloud Tasks emulator at {nothing_listens}")
    assert "`ordertasks dev`" in done.stderr and "`make dev`" in done.stderr


@pytest.mark.parametrize("args", READ, ids=" ".join)
def test_a_data_dir_without_ordertasks_data_is_refused(cli: Cli, tmp_path: Path, args: list[str]) -> None:
    mistyped = tmp_path / "vra"

    done = cli(*args, data_dir=mistyped)

    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"ordertasks {args[0]}: no ordertasks data in {mistyped} (no ordertasks.db): ")
    assert f"`ordertasks dev --data-dir {mistyped}`" in done.stderr
    assert not mistyped.exists(), "the refusal created the directory it refused"


def test_the_flag_names_the_directory_too(cli: Cli, tmp_path: Path) -> None:
    data_dir = failed_log(tmp_path / "var", {"ord_1": "open"})

    done = cli("failed", "list", "--data-dir", str(tmp_path / "vra"), data_dir=data_dir)

    assert done.returncode == 1 and f"no ordertasks data in {tmp_path / 'vra'} " in done.stderr, done.stderr
    assert "--init" in done.stderr


def test_init_starts_from_an_empty_store(cli: Cli, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"

    done = cli("failed", "list", "--init", data_dir=fresh)

    assert (done.returncode, done.stdout, done.stderr) == (0, "no failed tasks match\n", "")
    assert (fresh / "ordertasks.db").exists()
    assert cli("failed", "list", data_dir=fresh).returncode == 0      # now it holds ordertasks data


def test_commands_that_create_state_still_create_it(cli: Cli, tmp_path: Path) -> None:
    fresh, products = tmp_path / "fresh", tmp_path / "products.csv"
    products.write_text("sku,name,EUR\nMUG-1,Mug,9.50\n")

    done = cli("products", "import", str(products), data_dir=fresh)

    assert done.returncode == 0, done.stderr
    assert "MUG-1" in cli("products", "list", data_dir=fresh).stdout
