"""``ordertasks handler --workers N``: N gunicorn worker processes, each serving the handler;
``ordertasks dev`` starts one per CPU."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ordertasks.infra.config import REPO_ROOT
from ordertasks.infra.devstack import children, parse
from tests.support.servers import ServerProcess, free_port, wait_until


def worker_pids(master: int) -> set[int]:
    """Processes whose parent is ``master`` (gunicorn's workers)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == master:
                found.add(int(entry.name))
    return found


def answer_status(port: int) -> int:
    """The status of an unauthenticated delivery (the handler verifies tokens)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads worker processes from /proc")
def test_the_handler_runs_the_workers_it_is_given(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "ORDERTASKS_BACKEND": "local", "ORDERTASKS_DATA_DIR": str(tmp_path),
           "ORDERTASKS_HANDLER_URL": f"http://127.0.0.1:{port}/", "ORDERTASKS_OIDC_VERIFY": "true"}
    server = ServerProcess([sys.executable, "-m", "cli", "handler", "--port", str(port), "--workers", "2"], port,
                           env=env, log_path=tmp_path / "handler.log").start()
    try:
        assert server.proc is not None
        master = server.proc.pid
        wait_until(lambda: len(worker_pids(master)) == 2, timeout=30, what="two gunicorn workers")
        # Every answer comes from the handler itself: no token → 401, whichever worker took it.
        assert {answer_status(port) for _ in range(8)} == {401}
    finally:
        server.stop()


def test_workers_below_one_are_refused_at_start() -> None:
    import subprocess

    out = subprocess.run([sys.executable, "-m", "cli", "handler", "--workers", "0"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--workers: must be at least 1, not 0" in out.stderr


def test_the_dev_stack_starts_one_handler_worker_per_cpu() -> None:
    handler = next(child for child in children(parse([])) if child.name == "handler")
    assert handler.argv[handler.argv.index("--workers") + 1] == str(os.cpu_count() or 1)
    chosen = next(child for child in children(parse(["--handler-workers", "3"])) if child.name == "handler")
    assert chosen.argv[chosen.argv.index("--workers") + 1] == "3"
