"""A reader that goes away (``| head -1``) ends the command quietly: no ``BrokenPipeError``
traceback, the status a SIGPIPE death shows in a shell (141), as git and coreutils end."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ordertasks.handlers.settings import REPO_ROOT
from tests.cli.conftest import ORDERTASKS, failed_log, operator_shell

SIGPIPE_STATUS = 141
ENTRIES = 1000      # about 100 kB of table: more than a pipe holds, so the writer meets the closed end


def shell_pipe(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``COMMAND | head -1`` in bash; stdout is head's, stderr the command's, then its status."""
    script = f'{command} | head -1; echo "status ${{PIPESTATUS[0]}}" >&2'
    return subprocess.run(["bash", "-c", script], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)


def test_failed_list_into_head_ends_quietly(tmp_path: Path) -> None:
    data_dir = failed_log(tmp_path / "var", {f"ord_{n:05d}": "open" for n in range(ENTRIES)})
    ordertasks = " ".join(ORDERTASKS)

    done = shell_pipe(f"{ordertasks} failed list --limit {ENTRIES}", operator_shell(data_dir))

    assert done.stdout.split() == ["ID", "KIND", "ORDER", "ATTEMPTS", "STATUS", "LAST", "ERROR", "AGE"]
    assert done.stderr == f"status {SIGPIPE_STATUS}\n"


def test_help_into_head_ends_quietly(tmp_path: Path) -> None:
    done = shell_pipe(" ".join([*ORDERTASKS, "-h"]), operator_shell(tmp_path))

    assert done.stdout == "usage: ordertasks <command> [options]\n"
    assert done.stderr in ("status 0\n", f"status {SIGPIPE_STATUS}\n")   # head may leave after the last write


def test_a_reader_gone_before_the_first_write(tmp_path: Path) -> None:
    """The deterministic case: the pipe's read end is closed before the command prints."""
    data_dir = failed_log(tmp_path / "var", {"ord_1": "open"})
    for args in (["-h"], ["--version"], ["failed", "list"]):
        process = subprocess.Popen([*ORDERTASKS, *args], env=operator_shell(data_dir), cwd=REPO_ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        stderr = process.stderr.read()
        assert (process.wait(timeout=60), stderr) == (SIGPIPE_STATUS, ""), args
