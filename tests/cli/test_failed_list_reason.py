"""``ordertasks failed list`` shows the whole reason an entry failed, as the operator sees it:
in a terminal (a pseudo-terminal of a given width) the LAST ERROR column wraps to fit, and
into a pipe each entry is one line; either way the far end's message is never cut short."""

from __future__ import annotations

import fcntl
import json
import os
import struct
import subprocess
import termios
from datetime import UTC, datetime
from pathlib import Path

from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.handlers.contract import encode
from ordertasks.handlers.ports import FailureReport
from ordertasks.handlers.settings import REPO_ROOT
from tests.cli.conftest import ORDERTASKS, Cli, operator_shell

KIND = "notify_warehouse"
REASON = ("warehouse https://warehouse.example/notify refused the request with 422: "
          "{\"error\": \"unknown SKU\", \"sku\": \"MUG-BLUE-XL\", \"hint\": \"check the price book\"}")


def one_failure(data_dir: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(data_dir / "ordertasks.db")
    store.failed.record_failure(FailureReport("ord_long", KIND, "ordertasks-warehouse", "t-1",
                                              json.loads(encode(KIND, "ord_long")), "Rejected", REASON, 3,
                                              datetime.now(UTC)))
    store.close()
    return data_dir


def in_terminal(args: list[str], env: dict[str, str], columns: int) -> str:
    """What a terminal ``columns`` wide shows for ``ordertasks args`` (line endings as \\n)."""
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    with subprocess.Popen([*ORDERTASKS, *args], env=env, cwd=REPO_ROOT, stdin=follower, stdout=follower,
                          stderr=follower) as process:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:          # EIO: the command exited and closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_a_terminal_shows_the_whole_reason_wrapped_to_its_width(tmp_path: Path) -> None:
    shown = in_terminal(["failed", "list"], operator_shell(one_failure(tmp_path / "var")), columns=120)
    lines = shown.rstrip("\n").split("\n")
    assert lines[0].split() == ["ID", "KIND", "ORDER", "ATTEMPTS", "STATUS", "LAST", "ERROR", "AGE"], shown
    assert all(len(line) <= 120 for line in lines), shown
    assert len(lines) > 2, shown                                   # the reason took more than one line
    start, end = lines[0].index("LAST ERROR"), lines[0].index("AGE")
    column = " ".join(line[start:end].strip() for line in lines[1:])       # the LAST ERROR column, read down
    assert column == f"Rejected: {REASON}", shown
    assert "…" not in shown


def test_a_pipe_gets_one_line_per_entry_with_the_whole_reason(cli: Cli, tmp_path: Path) -> None:
    done = cli("failed", "list", data_dir=one_failure(tmp_path / "var"))
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.rstrip("\n").split("\n")
    assert f"Rejected: {REASON}" in row and row.split()[:3] == ["ord_long:notify_warehouse", KIND, "ord_long"]
