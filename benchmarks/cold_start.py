"""``cold_start``: from process start to the first answered task, and peak RSS, against a bare function.

    python -m benchmarks.cold_start [--quick] [--repeats N]

What a new Cloud Functions instance pays before it answers its first task. Two systems,
both started as production starts them, ``functions-framework --target ... --source ...``
(gunicorn, one worker, functions-framework's defaults), alternated: in each round both start
once, in turn, the one that goes first swapping every round (ABBA...), so a change in the
machine's load falls on both.

- **ours**: the repository's ``main.py`` (what ``ordertasks deploy`` stages, ``run_maintenance``
  beside ``handle_task``), target ``handle_task``, configured like production but on loopback:
  SQLite in a fresh data directory per start, OIDC verification **on** (a test issuer in this
  process serves the certificates; the handler fetches them on its first delivery, as it
  would Google's). The delivery is a real ``record_analytics`` task for a paid order stored
  before the start, with a signed token and Cloud Tasks' headers; it must be answered 200.
- **bare** (the baseline, same run): ``benchmarks/_bare_function.py``, target ``bare``,
  a function that reads the body and answers 200; sent the same request.

Measured per start: **time to the first 200** (from just before the process is spawned to the
answer of a POST sent in a loop until the server accepts it; a refused connection is retried
every 5 ms, an answer other than 200 fails the run), **peak RSS** (``VmHWM`` of every process
in the server's process group read right after that answer; the largest is the serving
worker, which holds everything the master imported before forking), and the **CPU** the
process group spent until then (utime + stime of its processes). Ratios ours / bare are taken
per round (the two starts of a round ran in the same window), then the median.

Targets (issue 33): time to the first answered task <= 1.5 x the bare function's; peak RSS
<= 1.5 x. Figures depend on the machine's load; the ratios much less.
"""

from __future__ import annotations

import http.client
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import (BENCH_DIR, REPO_ROOT, Proc, free_port, median, parser, print_table, print_targets,
                                python_module, target, write_results)

NAME = "cold_start"
SYSTEMS = ("ours", "bare")
LIMIT = 1.5
ORDER_ID = "cold-start-order"
KIND, QUEUE = "record_analytics", "ordertasks-analytics"
POLL_SECONDS = 0.005
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

Request = tuple[bytes, dict[str, str]]


# --- one process group, read from /proc -----------------------------------------------------


def group_pids(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` (the server and the workers it forked)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def peak_rss_mb(pid: int) -> float:
    """``VmHWM`` of ``pid`` in MB: the most resident memory it has held (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# --- one cold start ---------------------------------------------------------------------------


def first_answer(port: int, request: Request, timeout: float = 60.0) -> int:
    """POST ``request`` to 127.0.0.1:``port`` until the server accepts the connection; its status."""
    body, headers = request
    deadline = time.monotonic() + timeout
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("POST", "/", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status
        except (ConnectionRefusedError, ConnectionResetError):
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing accepted a connection on port {port} within {timeout:.0f}s") from None
            time.sleep(POLL_SECONDS)
        finally:
            conn.close()


def cold_start(argv: list[str], env: dict[str, str], log: Path, port: int, request: Request) -> dict[str, Any]:
    """Start ``argv``, time the first answer to ``request``, read the group's peak RSS and CPU, stop it."""
    proc = Proc(argv, log, env=env)
    started = time.perf_counter()
    proc.start(lambda: True)
    try:
        status = first_answer(port, request)
        seconds = time.perf_counter() - started
        pids = group_pids(proc.pid)
        rss = {pid: peak_rss_mb(pid) for pid in pids}
        cpu = sum(cpu_seconds(pid) for pid in pids)
    finally:
        proc.stop()
    if status != 200:
        raise RuntimeError(f"{argv[3:7]} answered its first request {status}, not 200; log: {log}")
    return {"seconds": seconds, "peak_rss_mb": max(rss.values(), default=0.0), "cpu_seconds": cpu,
            "processes": len(pids), "rss_by_process_mb": sorted(rss.values(), reverse=True)}


# --- the two systems --------------------------------------------------------------------------


def framework_argv(source: Path, target_name: str, port: int) -> list[str]:
    """``functions-framework --target ... --source ...`` with this interpreter, on ``port``."""
    return python_module("functions_framework", "--target", target_name, "--source", str(source),
                         "--host", "127.0.0.1", "--port", str(port))


def handler_env(data_dir: Path, url: str, issuer: Any) -> dict[str, str]:
    """Production settings on loopback: SQLite in ``data_dir``, OIDC on against ``issuer``."""
    return {"ORDERTASKS_BACKEND": "local", "ORDERTASKS_DATA_DIR": str(data_dir),
            "ORDERTASKS_CONFIG": str(REPO_ROOT / "infra" / "tasks.toml"), "ORDERTASKS_HANDLER_URL": url,
            "ORDERTASKS_OIDC_VERIFY": "true", "ORDERTASKS_OIDC_CERTS_URL": issuer.certs_url,
            "ORDERTASKS_OIDC_AUDIENCE": url, "ORDERTASKS_OIDC_ALLOWED_EMAILS": issuer.email,
            "ORDERTASKS_LOG_LEVEL": "WARNING", "FUNCTION_TARGET": "handle_task"}


def store_order(data_dir: Path) -> None:
    """The paid order the first task refers to (task bodies are references)."""
    from ordertasks.handlers.backends.sqlite import SqliteStore
    from tests.effects.orders import eur_order
    from tests.support.orders import store_paid_order

    data_dir.mkdir(parents=True)
    store = SqliteStore(data_dir / "ordertasks.db")
    try:
        store_paid_order(store, ORDER_ID, eur_order())
    finally:
        store.close()


def task_request(token: str) -> Request:
    """The delivery Cloud Tasks would send for the order's analytics task."""
    from ordertasks.handlers.contract import encode

    return encode(KIND, ORDER_ID), {
        "Content-Type": "application/json", "Authorization": f"Bearer {token}", "User-Agent": "Google-Cloud-Tasks",
        "X-CloudTasks-QueueName": QUEUE, "X-CloudTasks-TaskName": f"{ORDER_ID}-{KIND}",
        "X-CloudTasks-TaskRetryCount": "0", "X-CloudTasks-TaskExecutionCount": "0"}


def start_ours(tmp: Path, round_: int) -> dict[str, Any]:
    """One cold start of ``main.py``'s ``handle_task`` with a fresh store and a fresh issuer."""
    from ordertasks.infra.config import load_catalog
    from tests.support.issuer import TestIssuer

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    data_dir = tmp / f"ours-{round_}"
    store_order(data_dir)
    issuer = TestIssuer(audience=url, email=load_catalog().service_account_email("dispatcher"))
    try:
        return cold_start(framework_argv(REPO_ROOT / "main.py", "handle_task", port),
                          handler_env(data_dir, url, issuer), tmp / f"ours-{round_}.log", port,
                          task_request(issuer.token()))
    finally:
        issuer.stop()


def start_bare(tmp: Path, round_: int) -> dict[str, Any]:
    """One cold start of the bare function, sent the same kind of request."""
    port = free_port()
    return cold_start(framework_argv(BENCH_DIR / "_bare_function.py", "bare", port), {"FUNCTION_TARGET": "bare"},
                      tmp / f"bare-{round_}.log", port, task_request("not-checked"))


STARTERS = {"ours": start_ours, "bare": start_bare}


def run(rounds: int, tmp: Path) -> list[dict[str, dict[str, Any]]]:
    """``rounds`` rounds, each one start of both systems, the first swapping every round."""
    results = []
    for r in range(rounds):
        order = SYSTEMS if r % 2 == 0 else SYSTEMS[::-1]
        results.append({name: STARTERS[name](tmp, r) for name in order})
        print(f"  round {r + 1}: " + ", ".join(
            f"{name} {results[-1][name]['seconds'] * 1000:.0f} ms {results[-1][name]['peak_rss_mb']:.1f} MB"
            for name in SYSTEMS), flush=True)
    return results


# --- figures ----------------------------------------------------------------------------------


FIELDS = ("seconds", "peak_rss_mb", "cpu_seconds")


def figures(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Medians per system, and ours / bare taken per round, then the median."""
    medians = {name: {f: median(r[name][f] for r in rounds) for f in FIELDS} for name in SYSTEMS}
    ratios = {f: median(r["ours"][f] / r["bare"][f] for r in rounds if r["bare"][f]) for f in FIELDS}
    return {"median": medians, "ratio": ratios, "rounds": len(rounds)}


def cold_targets(fig: dict[str, Any]) -> list[dict[str, Any]]:
    """Time and memory, each <= 1.5 x the bare function's in the same rounds."""
    bare = fig["median"]["bare"]
    return [target("time to the first answered task, ours / bare", fig["ratio"]["seconds"], "<=", LIMIT, "x",
                   f"bare function {bare['seconds'] * 1000:.0f} ms, same rounds"),
            target("peak RSS, ours / bare", fig["ratio"]["peak_rss_mb"], "<=", LIMIT, "x",
                   f"bare function {bare['peak_rss_mb']:.1f} MB, same rounds")]


def report(args: Any, rounds: list[dict[str, dict[str, Any]]]) -> int:
    """Table, targets, results file."""
    fig = figures(rounds)
    rows = [(name, m["seconds"] * 1000, m["peak_rss_mb"], m["cpu_seconds"] * 1000)
            for name, m in fig["median"].items()]
    rows.append(("ours / bare (per round, median)", fig["ratio"]["seconds"], fig["ratio"]["peak_rss_mb"],
                 fig["ratio"]["cpu_seconds"]))
    print_table(f"{NAME}: process start to the first 200, medians of {len(rounds)} alternated rounds", rows,
                ("system", "ms to first 200", "peak RSS MB (largest process)", "CPU ms until then"))
    targets = cold_targets(fig)
    print_targets(targets)
    write_results(NAME, {
        "parameters": {"rounds": len(rounds), "quick": args.quick, "task": KIND, "oidc_verify": True,
                       "server": "functions-framework (gunicorn, 1 worker)", "ours": "main.py:handle_task",
                       "bare": "benchmarks/_bare_function.py:bare"},
        "figures": {**fig, "by_round": rounds},
        "baseline": {"name": "bare functions-framework function, same rounds", **fig["median"]["bare"]},
        "ratio": fig["ratio"]["seconds"], "targets": targets})
    return 0


def main(argv: list[str] | None = None) -> int:
    """Measure, print, write ``results/cold_start.json``."""
    args = parser(NAME, __doc__).parse_args(argv)
    rounds = args.repeats or (3 if args.quick else 10)
    with tempfile.TemporaryDirectory(prefix="bench-cold-start-") as name:
        results = run(rounds, Path(name))
    return report(args, results)


if __name__ == "__main__":
    sys.exit(main())
