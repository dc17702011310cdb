"""``ordertasks failed list`` shows what still needs an operator (open, replay_requested) unless
``--status`` or ``--all`` says otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Cli, failed_log

STATUSES = {"ord_open": "open", "ord_asked": "replay_requested", "ord_replayed": "replayed", "ord_closed": "resolved"}


def orders_listed(output: str) -> set[str]:
    """The ORDER column of a ``failed list`` table."""
    header, *rows = output.splitlines()
    assert header.split()[:3] == ["ID", "KIND", "ORDER"], output
    return {row.split()[2] for row in rows}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return failed_log(tmp_path / "var", STATUSES)


@pytest.mark.parametrize("flags, shown", [
    ([], {"ord_open", "ord_asked"}),
    (["--all"], set(STATUSES)),
    (["--status", "resolved"], {"ord_closed"}),
    (["--status", "open"], {"ord_open"}),
])
def test_what_the_list_shows(cli: Cli, data_dir: Path, flags: list[str], shown: set[str]) -> None:
    done = cli("failed", "list", *flags, data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    assert orders_listed(done.stdout) == shown


def test_the_newest_failure_comes_first_across_statuses(cli: Cli, data_dir: Path) -> None:
    done = cli("failed", "list", "--limit", "1", data_dir=data_dir)
    assert orders_listed(done.stdout) == {"ord_asked"}     # failed after ord_open


def test_all_and_status_do_not_mix(cli: Cli, data_dir: Path) -> None:
    done = cli("failed", "list", "--all", "--status", "open", data_dir=data_dir)
    assert done.returncode == 2 and "not allowed with argument" in done.stderr, done.stderr
