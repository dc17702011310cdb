"""``handler_overhead``: what the task handler adds over a bare Cloud Function.

    python -m benchmarks.handler_overhead [--quick]

Both functions run under functions-framework as it runs in production (gunicorn, its
default worker and threads), each in its own process, driven by the same load generator:

- the handler (``_handler_function.py``): the real ``handle_task`` built by
  ``functions.main.build_handler`` with OIDC verification on, the SQLite store, and the
  ``record_analytics`` effect replaced by a no-op. Every request carries a distinct order id
  (so each is a real claim + complete, never a duplicate). The tokens come from a benchmark
  issuer whose certificates are served on loopback (``tests/support/issuer.py``), in two
  modes, each measured:

  - ``reused`` (the headline): one token for every delivery, as Cloud Tasks sends them — a
    token is minted per service account and audience and reused while it is fresh (our
    emulator reuses one for 5 minutes, ``infra/emulator/oidc.py``); the handler verifies
    it once and answers the repeats from its cache of verified tokens
    (``handlers/verified_tokens.py``).
  - ``fresh`` (the worst case): a token from a pool larger than that cache, so every
    delivery is a full RS256 verification, as if each dispatch carried a new token.
- the baseline (``_bare_function.py``): reads the body, answers 200; it is sent the very
  same requests (body, token, headers).

Latency: one request at a time, p50 of each; added latency = handler p50 - bare p50.
Throughput: 16 concurrent connections for a fixed time; handler req/s / bare req/s.
The machine is shared, and its load moves within seconds: each repeat is cut into short
slices in which the bare function and the handler (both token modes) run one after the
other, and each slice's handler figures are taken against the bare function's of the same
slice. The figures are medians over all slices of all repeats. Each slice also records
the CPU the function's processes used per request under load (``/proc``): "bare CPU /
handler CPU" is the throughput share a worker would reach with a core to itself, a figure
the machine's load moves much less than the throughput share (reported beside it, no
target of its own).

Targets (both modes are reported against them): p50 added latency <= 1 ms; handler
throughput >= 50 % of bare.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import (BENCH_DIR, Proc, free_port, median, parser, percentile, port_open, print_table,
                                print_targets, python_module, target, write_results)
from benchmarks._loadgen import RequestFactory, run_load
from benchmarks.end_to_end import cpu_seconds, descendants

NAME = "handler_overhead"
DISPATCHER_EMAIL = "bench-dispatcher@bench-project.iam.gserviceaccount.com"
TOKEN_POOL = 4096 + 104  # > the verifier's cache of 4096: every token is verified again
TOKEN_MODES = ("reused", "fresh")
SLICES = 5   # per repeat: the systems alternate slice by slice, so a change of machine load hits all of them
THROUGHPUT_CONCURRENCY = 16
SNAPSHOT: dict[str, Any] = {
    "placed_at": "2026-01-02T10:00:00+00:00",
    "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
    "shipping_address": {"name": "Ada Lovelace", "line1": "1 Market Street", "city": "Berlin",
                         "postal_code": "10115", "country": "DE"},
    "items": [{"sku": "MUG-1", "name": "Mug", "quantity": 2, "unit_price": "9.50"}],
    "totals": {"currency": "EUR", "subtotal": "19.00", "tax": "3.61", "shipping": "0.00", "total": "22.61"},
    "tax_rate": "0.19",
}


def function_server(tmp: Path, source: str, target_name: str, env: dict[str, str]) -> tuple[Proc, str]:
    """``python -m functions_framework`` (gunicorn) serving ``source`` on a free port."""
    port = free_port()
    argv = python_module("functions_framework", "--target", target_name, "--source", str(BENCH_DIR / source),
                         "--host", "127.0.0.1", "--port", str(port))
    proc = Proc(argv, tmp / f"{target_name}-{port}.log", env=env).start(lambda: port_open(port))
    return proc, f"http://127.0.0.1:{port}/"


def mint_tokens(issuer: Any, count: int) -> list[str]:
    """``count`` distinct valid tokens (a ``jti`` each)."""
    return [issuer.token(jti=f"bench-{i}") for i in range(count)]


ORDERS_PER_RUN = 40_000        # more than a full run sends to one (mode, repeat): none is delivered twice
QUICK_ORDERS_PER_RUN = 12_000


def store_orders(data_dir: Path, tags: list[str], per_run: int = ORDERS_PER_RUN) -> None:
    """Task bodies are references: the handler reads each order, so store every one it will see."""
    from ordertasks.handlers.backends.sqlite import SqliteStore
    from tests.support.orders import store_paid_order

    data_dir.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(data_dir / "ordertasks.db")
    for tag in tags:
        for index in range(per_run):
            store_paid_order(store, f"bench-{tag}-{index}", SNAPSHOT)


def task_requests(tokens: list[str], tag: str, per_run: int = ORDERS_PER_RUN) -> RequestFactory:
    """Deliveries of the no-op kind, each for the next (stored) order of ``tag``, each with the
    next token (one token for all of them when ``tokens`` holds one). The sequence goes on
    across load runs, so no order is delivered twice."""
    from ordertasks.handlers.contract import encode

    sequence = itertools.count()

    def make(_index: int) -> tuple[bytes, dict[str, str]]:
        index = next(sequence)
        order_id = f"bench-{tag}-{index % per_run}"
        return encode("record_analytics", order_id), {
            "Content-Type": "application/json", "Authorization": f"Bearer {tokens[index % len(tokens)]}",
            "X-CloudTasks-QueueName": "ordertasks-analytics", "X-CloudTasks-TaskName": f"x-{order_id}",
            "X-CloudTasks-TaskRetryCount": "0", "X-CloudTasks-TaskExecutionCount": "0",
            "X-CloudTasks-TaskETA": f"{time.time():.6f}"}
    return make


Target = tuple[str, RequestFactory, int]     # url, requests, pid of the functions-framework process


def process_tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and every process under it (gunicorn's master and its worker)."""
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in descendants(pid))


def measure(targets: dict[str, Target], requests: int, seconds: float) -> dict[str, Any]:
    """One repeat, every system interleaved in ``SLICES`` short slices (see module docstring):
    per slice each system's sequential p50, its throughput at 16 connections and the CPU its
    processes spent per request meanwhile, and the handler's figures against the bare
    function's of the same slice."""
    for url, make, _pid in targets.values():
        _check(run_load(url, make, concurrency=4, count=50).statuses, url)
    slices: list[dict[str, dict[str, float]]] = []
    for _ in range(SLICES):
        row: dict[str, dict[str, float]] = {}
        for name, (url, make, pid) in targets.items():
            latency = run_load(url, make, concurrency=1, count=requests // SLICES)
            cpu_before = process_tree_cpu(pid)
            load = run_load(url, make, concurrency=THROUGHPUT_CONCURRENCY, duration=seconds / SLICES)
            cpu_ms = (process_tree_cpu(pid) - cpu_before) * 1000 / max(len(load.latencies_ms), 1)
            _check(latency.statuses + load.statuses, url)
            row[name] = {"p50_ms": percentile(latency.latencies_ms, 50),
                         "p95_ms": percentile(latency.latencies_ms, 95), "throughput_per_s": load.throughput,
                         "cpu_ms_per_request": cpu_ms}
        for name, figures in row.items():
            figures["added_p50_ms"] = figures["p50_ms"] - row["bare"]["p50_ms"]
            figures["throughput_share"] = figures["throughput_per_s"] / row["bare"]["throughput_per_s"]
            figures["cpu_share"] = row["bare"]["cpu_ms_per_request"] / max(figures["cpu_ms_per_request"], 1e-9)
        slices.append(row)
    return {"slices": slices}


def _check(statuses: Any, url: str) -> None:
    if set(statuses) != {200}:
        raise RuntimeError(f"{url} answered {dict(statuses)}")


def main(argv: list[str] | None = None) -> int:
    """Measure, print, write ``results/handler_overhead.json``."""
    from tests.support.issuer import TestIssuer

    args = parser(NAME, __doc__).parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    requests, seconds = (500, 4.0) if args.quick else (2000, 10.0)
    per_run = QUICK_ORDERS_PER_RUN if args.quick else ORDERS_PER_RUN
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-handler-") as name:
        tmp = Path(name)
        issuer = TestIssuer(audience="placeholder", email=DISPATCHER_EMAIL)
        try:
            bare, bare_url = function_server(tmp, "_bare_function.py", "bare", {})
            started = time.monotonic()
            store_orders(tmp / "handler-data", [f"{m}{r}" for m in TOKEN_MODES for r in range(repeats)], per_run)
            print(f"  stored {repeats * len(TOKEN_MODES) * per_run} orders in {time.monotonic() - started:.1f}s",
                  flush=True)
            handler, handler_url = start_handler(tmp, issuer)
            issuer.audience = handler_url
            started = time.monotonic()
            tokens = {"fresh": mint_tokens(issuer, TOKEN_POOL), "reused": [issuer.token(jti="bench-reused")]}
            print(f"  minted {TOKEN_POOL + 1} tokens in {time.monotonic() - started:.1f}s", flush=True)
            try:
                for r in range(repeats):
                    # The bare function gets the very same requests: equal parsing work on both sides.
                    targets: dict[str, Target] = {
                        "bare": (bare_url, task_requests(tokens["fresh"], f"b{r}", per_run), bare.pid),
                        **{f"handler, {mode} token": (handler_url, task_requests(tokens[mode], f"{mode}{r}", per_run),
                                                      handler.pid) for mode in TOKEN_MODES}}
                    runs.append(measure(targets, requests, seconds))
                    print(f"  repeat {r + 1}: " + "; ".join(
                        f"{name} {median(s[name]['throughput_per_s'] for s in runs[-1]['slices']):.0f} req/s"
                        for name in targets), flush=True)
            finally:
                handler.stop()
                bare.stop()
        finally:
            issuer.stop()
    return report(args, repeats, requests, seconds, runs)


def start_handler(tmp: Path, issuer: Any) -> tuple[Proc, str]:
    """The handler function, configured like production but on loopback and SQLite."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {"ORDERTASKS_BACKEND": "local", "ORDERTASKS_DATA_DIR": str(tmp / "handler-data"),
           "ORDERTASKS_HANDLER_URL": url, "ORDERTASKS_OIDC_VERIFY": "true",
           "ORDERTASKS_OIDC_CERTS_URL": issuer.certs_url, "ORDERTASKS_OIDC_AUDIENCE": url,
           "ORDERTASKS_OIDC_ALLOWED_EMAILS": DISPATCHER_EMAIL}
    argv = python_module("functions_framework", "--target", "handle_task", "--source",
                         str(BENCH_DIR / "_handler_function.py"), "--host", "127.0.0.1", "--port", str(port))
    proc = Proc(argv, tmp / f"handler-{port}.log", env=env).start(lambda: port_open(port))
    return proc, url


def report(args: Any, repeats: int, requests: int, seconds: float, runs: list[dict[str, Any]]) -> int:
    """Table, targets, results file: medians over every slice of every repeat."""
    slices = [row for run in runs for row in run["slices"]]
    fig = {name: {k: median(row[name][k] for row in slices) for k in slices[0][name]} for name in slices[0]}
    bare = fig["bare"]
    rows = [(name, f["p50_ms"], f["p95_ms"], f["added_p50_ms"], f["throughput_per_s"],
             f"{f['throughput_share'] * 100:.1f} %", f["cpu_ms_per_request"], f"{f['cpu_share'] * 100:.1f} %")
            for name, f in fig.items()]
    print_table(f"{NAME}: {requests} sequential requests and {seconds:g}s at {THROUGHPUT_CONCURRENCY} connections "
                f"per system and repeat, in {SLICES} interleaved slices; medians over {len(slices)} slices", rows,
                ("function", "p50 ms", "p95 ms", "added p50 ms", "req/s", "of bare", "CPU ms/req",
                 "bare CPU / CPU"))
    base = f"bare function p50 {bare['p50_ms']:.2f} ms, {bare['throughput_per_s']:.0f} req/s"
    targets = []
    for mode in TOKEN_MODES:
        f = fig[f"handler, {mode} token"]
        targets += [target(f"p50 added latency ({mode} token)", f["added_p50_ms"], "<=", 1.0, "ms", baseline=base),
                    target(f"throughput share of bare ({mode} token)", f["throughput_share"] * 100, ">=", 50, "%",
                           baseline=base)]
    print_targets(targets)
    headline = fig["handler, reused token"]
    write_results(NAME, {
        "parameters": {"sequential_requests": requests, "throughput_seconds": seconds, "slices_per_repeat": SLICES,
                       "throughput_concurrency": THROUGHPUT_CONCURRENCY, "token_pool_fresh": TOKEN_POOL,
                       "token_modes": list(TOKEN_MODES), "repeats": repeats, "quick": args.quick, "store": "sqlite",
                       "oidc": True},
        "figures": {**fig, "added_p50_ms": headline["added_p50_ms"], "throughput_share": headline["throughput_share"],
                    "repeats": runs},
        "baseline": {"name": "bare functions-framework function", **bare},
        "ratio": headline["throughput_share"], "targets": targets})
    return 0


if __name__ == "__main__":
    sys.exit(main())
