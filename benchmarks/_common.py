"""Shared plumbing of the benchmarks: processes on loopback, statistics, results files.

Every benchmark writes ``benchmarks/results/<name>.json`` through :func:`write_results`
(figures, ratio to the baseline, targets met or not, machine info, parameters) and prints
a table with :func:`print_table`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"


def parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """The command line every benchmark shares (``--quick``, ``--repeats``)."""
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a small run (part of `make bench ARGS=--quick`)")
    p.add_argument("--repeats", type=int, default=None, help="repeats to take the median over")
    return p


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    return {"cpu_count": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "processor": platform.processor() or platform.machine()}


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Iterable[float]) -> float:
    """The median (NaN for no values)."""
    data = list(values)
    return statistics.median(data) if data else float("nan")


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Write ``results/<name>.json`` atomically (a half-written file never looks like a result)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    body = {"benchmark": name, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine_info(), **payload}
    tmp.write_text(json.dumps(body, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def target(name: str, value: float, op: str, limit: float, unit: str = "", baseline: str = "") -> dict[str, Any]:
    """One target line: ``value op limit``, whether it holds, and the same-run ``baseline`` it
    was measured against (a short text with the baseline's figure)."""
    checks: dict[str, Callable[[float, float], bool]] = {
        ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b, ">": lambda a, b: a > b}
    return {"target": name, "value": round(value, 3), "op": op, "limit": round(limit, 3), "unit": unit,
            "met": bool(checks[op](value, limit)), "baseline": baseline}


def print_table(title: str, rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    """A plain fixed-width table on stdout."""
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n== {title}")
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


def print_targets(targets: Sequence[dict[str, Any]]) -> None:
    """The targets as a table."""
    rows = [(t["target"], f"{t['value']:g} {t['unit']}".strip(), f"{t['op']} {t['limit']:g}",
             "met" if t["met"] else "NOT MET", t.get("baseline", "")) for t in targets]
    print_table("targets", rows, ("target", "value", "limit", "result", "same-run baseline"))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


# --- processes on loopback --------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ok(url: str) -> bool:
    """True when ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:
            return 200 <= resp.status < 300
    except OSError:
        return False


def port_open(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``condition`` until truthy; ``TimeoutError`` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


class Proc:
    """A server subprocess in its own process group, logging to a file, stopped with it."""

    def __init__(self, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path = REPO_ROOT) -> None:
        self.argv, self.log_path = list(argv), log_path
        self.env = {**os.environ, **(env or {})}
        self.env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + self.env.get("PYTHONPATH", "")
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready: Callable[[], bool], timeout: float = 60.0) -> "Proc":
        """Start it and wait until ``ready()`` (fails early if it exits)."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

        def alive_and_ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{' '.join(self.argv[:4])} exited with {self.process.returncode}; "
                                   f"log: {self.log_path}")
            return ready()
        try:
            wait_for(alive_and_ready, timeout, f"{' '.join(self.argv[:4])} to be ready", interval=0.1)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def pid(self) -> int:
        """Process id (for py-spy)."""
        assert self.process is not None
        return self.process.pid

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, SIGKILL it if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> "Proc":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def python_module(module: str, *args: str) -> list[str]:
    """``argv`` running ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def start_emulator(tmp: Path, *args: str) -> tuple[Proc, str]:
    """The ordertasks Cloud Tasks emulator (quiet) on a free port; returns it and ``host:port``."""
    port = free_port()
    argv = python_module("ordertasks.infra.emulator", "--port", str(port), "--db", str(tmp / f"tasks-{port}.db"),
                         "--quiet", *args)
    proc = Proc(argv, tmp / f"emulator-{port}.log").start(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"))
    return proc, f"127.0.0.1:{port}"


def rest_client(host: str) -> Any:
    """The official ``CloudTasksClient`` over REST, anonymous, aimed at ``host:port``."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import tasks_v2

    return tasks_v2.CloudTasksClient(transport="rest", credentials=AnonymousCredentials(),
                                     client_options=ClientOptions(api_endpoint=f"http://{host}"))
