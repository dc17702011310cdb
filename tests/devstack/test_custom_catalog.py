"""``ordertasks dev`` with a shop's own catalog, started from a directory that is not the
checkout: named by ``ORDERTASKS_CONFIG`` or by a relative ``--config``, every part reads it
(the emulator creates its queues, the CLI pointed at the stack counts its kinds)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.settings.custom_catalog import CUSTOM_KIND, CUSTOM_QUEUE, cli_argv, shell, write_custom_catalog
from tests.support.servers import free_port, wait_until

PARTS = ("emulator", "handler", "checkout", "smtp", "warehouse", "console")


class Dev:
    """``ordertasks dev`` run from ``directory`` on free ports; the shell an operator there has."""

    def __init__(self, directory: Path, flags: list[str], **variables: str) -> None:
        self.directory, self.ports = directory, {name: free_port() for name in PARTS}
        self.env = shell(directory / "var", **variables)
        argv = cli_argv("dev", "--handler-workers", "1", "--data-dir", "var", *flags,
                        *(arg for name, port in self.ports.items() for arg in (f"--{name}-port", str(port))))
        with open(directory / "dev.log", "ab") as log:
            self.proc = subprocess.Popen(argv, cwd=directory, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"ordertasks dev exited {self.proc.returncode}: {self.log()}")
        try:
            return requests.get(f"http://127.0.0.1:{self.ports['console']}/healthz", timeout=0.5).ok
        except requests.RequestException:
            return False

    def log(self) -> str:
        return (self.directory / "dev.log").read_text(errors="replace")[-3000:]

    def cli(self, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
        """``ordertasks ARGS`` in the same directory and shell (plus ``variables``), pointed at this stack."""
        env = {**self.env, "CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{self.ports['emulator']}", **variables}
        return subprocess.run(cli_argv(*args), cwd=self.directory, env=env, capture_output=True, text=True,
                              timeout=60, check=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture
def started() -> Iterator[list[Dev]]:
    stacks: list[Dev] = []
    yield stacks
    for stack in stacks:
        stack.stop()


def start(stacks: list[Dev], directory: Path, flags: list[str], **variables: str) -> Dev:
    stack = Dev(directory, flags, **variables)
    stacks.append(stack)
    wait_until(stack.ready, timeout=60, interval=0.2, what="ordertasks dev")
    return stack


def queues_and_kinds(stats: subprocess.CompletedProcess[str]) -> tuple[set[str], str]:
    assert stats.returncode == 0, stats.stdout + stats.stderr
    assert "unavailable" not in stats.stdout, stats.stdout   # the emulator holds every queue stats asks for
    queue_block, _, kinds = stats.stdout.partition("\n\n")
    return {line.split()[0] for line in queue_block.splitlines()[1:]}, kinds


def test_every_part_reads_the_catalog_ordertasks_config_names(started: list[Dev], tmp_path: Path) -> None:
    write_custom_catalog(tmp_path / "shop.toml")

    stack = start(started, tmp_path, [], ORDERTASKS_CONFIG="shop.toml")

    queues, kinds = queues_and_kinds(stack.cli("stats"))
    assert CUSTOM_QUEUE in queues, stack.log()
    assert CUSTOM_KIND in kinds
    failed = stack.cli("failed", "list")
    assert failed.returncode == 0, failed.stderr


def test_a_relative_config_flag_reaches_every_part(started: list[Dev], tmp_path: Path) -> None:
    write_custom_catalog(tmp_path / "shop.toml")

    stack = start(started, tmp_path, ["--config", "shop.toml"], ORDERTASKS_CONFIG="elsewhere/missing.toml")

    # The banner's second-terminal exports name the catalog the stack runs on.
    queues, _ = queues_and_kinds(stack.cli("stats", ORDERTASKS_CONFIG=str(tmp_path / "shop.toml")))
    assert CUSTOM_QUEUE in queues, stack.log()
