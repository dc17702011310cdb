"""One ``ordertasks dev`` for the docs' blocks, and the second terminal its banner describes."""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.terminal import DEFAULT_PORTS, Terminal
from tests.support.servers import ServerProcess, free_port, http_ok

BANNER_END = "Ctrl-C stops everything."
EXPORT = re.compile(r"^\s*export (?P<name>[A-Z_][A-Z0-9_]*)=(?P<value>\S+)\s*$", re.M)
ACTIVATE = re.compile(r"^\s*\. (?P<path>\S+/bin/activate)\b", re.M)
# A reader's second terminal has none of the test process's settings: only what the banner says.
INHERITED = re.compile(r"^(ORDERTASKS_|CLOUD_TASKS_EMULATOR_HOST$|CLOUDSDK_)")


def wait_for_banner(log: Path, server: ServerProcess, timeout: float = 120.0) -> str:
    """The dev stack's output up to the end of its banner (it is printed once every part is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        if BANNER_END in text:
            return text
        if server.proc is not None and server.proc.poll() is not None:
            raise RuntimeError(f"ordertasks dev exited ({server.proc.returncode}):\n{text}")
        time.sleep(0.2)
    raise AssertionError(f"no banner from ordertasks dev after {timeout}s; log: {log}")


def second_terminal_env(banner: str) -> dict[str, str]:
    """The environment of a terminal that ran the banner's lines (activate + exports)."""
    env = {k: v for k, v in os.environ.items() if not INHERITED.match(k)}
    activate = ACTIVATE.search(banner)
    bin_dir = str(Path(activate["path"]).parent) if activate else str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env.update({m["name"]: shlex.split(m["value"])[0] for m in EXPORT.finditer(banner)})
    return env


@pytest.fixture(scope="session")
def dev_banner_terminal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Terminal]]:
    """``ordertasks dev`` on free ports (shipped catalog, delays 0) and the terminal its banner sets up."""
    root = tmp_path_factory.mktemp("docs")
    data_dir, log = root / "var", root / "dev.log"
    ports = {name: free_port() for name in DEFAULT_PORTS}
    argv = [sys.executable, "-m", "cli", "dev", "--data-dir", str(data_dir), "--delay-scale", "0"]
    argv += [arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))]
    server = ServerProcess(argv, ports["checkout"], env=dict(os.environ), log_path=log,
                           ready=lambda: http_ok(ports["checkout"]))
    server.start(timeout=120)
    try:
        banner = wait_for_banner(log, server)
        yield banner, Terminal(second_terminal_env(banner), ports, data_dir)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def terminal(dev_banner_terminal: tuple[str, Terminal]) -> Terminal:
    """The second terminal the docs' blocks run in."""
    return dev_banner_terminal[1]
