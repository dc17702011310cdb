"""Every subcommand that reads the catalog reads the one ``ORDERTASKS_CONFIG`` names, taken
from the working directory; a missing or invalid catalog is one line naming it, exit 2.

Each command is run as a person would, from a directory that is not the checkout, with a
catalog it must refuse: a command that fell back to ``infra/tasks.toml`` would not.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ordertasks.cli import CATALOG_FROM_ENVIRONMENT, COMMANDS
from tests.settings.custom_catalog import cli_argv, shell, write_broken_catalog

# subcommand -> the argv that runs it (each stops at the catalog check, before serving anything)
CATALOG_READERS: dict[str, list[str]] = {
    "handler": ["handler"], "checkout": ["checkout"], "console": ["console"], "failed": ["failed", "list"],
    "sweep": ["sweep"], "reconcile": ["reconcile"], "stats": ["stats"], "products": ["products", "list"],
    "demo": ["demo"], "dev": ["dev"], "deploy": ["deploy", "plan"], "relay": ["relay"], "outbox": ["outbox", "status"],
}
STANDS_ALONE = {"emulator"}   # takes its queues from --queues


def test_the_table_covers_every_subcommand() -> None:
    assert set(CATALOG_READERS) | STANDS_ALONE == set(COMMANDS)
    assert CATALOG_FROM_ENVIRONMENT <= set(CATALOG_READERS)


def run_in(directory: Path, argv: list[str], **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_argv(*argv), cwd=directory, env=shell(directory / "var", **variables),
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("name", sorted(CATALOG_READERS))
def test_reads_the_catalog_ordertasks_config_names(name: str, tmp_path: Path) -> None:
    write_broken_catalog(tmp_path / "shop.toml")

    done = run_in(tmp_path, CATALOG_READERS[name], ORDERTASKS_CONFIG="shop.toml")

    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"{tmp_path / 'shop.toml'}:" in done.stderr and "ordertasks-nowhere" in done.stderr


@pytest.mark.parametrize("name", sorted(CATALOG_READERS))
def test_a_missing_catalog_is_one_line_naming_it(name: str, tmp_path: Path) -> None:
    done = run_in(tmp_path, CATALOG_READERS[name], ORDERTASKS_CONFIG="missing.toml")

    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"{tmp_path / 'missing.toml'}: cannot read the catalog" in done.stderr


@pytest.mark.parametrize("name", ["dev", "deploy"])
def test_config_flag_wins_over_the_variable(name: str, tmp_path: Path) -> None:
    write_broken_catalog(tmp_path / "shop.toml")

    done = run_in(tmp_path, [*CATALOG_READERS[name], "--config", "shop.toml"], ORDERTASKS_CONFIG="missing.toml")

    assert done.returncode == 2 and "ordertasks-nowhere" in done.stderr, done.stderr
    assert "missing.toml" not in done.stderr
