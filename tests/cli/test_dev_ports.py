"""``ordertasks dev`` checks every port before it starts anything and names all the taken ones
in one message, so one round of fixes is enough."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.support.servers import free_port

PARTS = ("emulator", "handler", "checkout", "smtp", "warehouse", "console")


@pytest.fixture
def ports() -> dict[str, int]:
    return {name: free_port() for name in PARTS}


@pytest.fixture
def occupy() -> Iterator[ExitStack]:
    with ExitStack() as held:
        yield held


def listen(held: ExitStack, port: int) -> None:
    sock = held.enter_context(socket.socket())
    sock.bind(("127.0.0.1", port))
    sock.listen()


def test_every_taken_port_is_named_at_once(cli: Cli, tmp_path: Path, ports: dict[str, int], occupy: ExitStack) -> None:
    for part in ("handler", "console", "smtp"):
        listen(occupy, ports[part])

    done = cli("dev", "--data-dir", str(tmp_path / "var"),
               *[arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))])

    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    # In start order, each with its part and the flag that moves it.
    assert (f"ports {ports['smtp']} (smtp), {ports['handler']} (handler), {ports['console']} (console) "
            "are already in use") in done.stderr
    assert "--smtp-port N --handler-port N --console-port N" in done.stderr
    assert not (tmp_path / "var" / "logs").exists(), "a part was started before the ports were checked"
