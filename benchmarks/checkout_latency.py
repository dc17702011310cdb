"""``checkout_latency``: p50/p95 of ``POST /api/checkout`` with concurrent vs sequential enqueue.

    python -m benchmarks.checkout_latency [--quick]

The checkout API runs as ``ordertasks checkout`` (its own process, SQLite, the local
payment gateway) against the Cloud Tasks emulator, which injects 25 ms into every API call
(``--inject-latency-ms``, the round trip to the real service). The catalog's queues are
paused, so the measurement is the producer alone. One client sends checkouts one after
another (a single shopper's latency, no queueing in the server). Three settings, run
interleaved in each repeat:

- concurrent enqueue, 25 ms per call (the product);
- ``ORDERTASKS_ENQUEUE_MODE=sequential``, 25 ms per call (the baseline);
- concurrent enqueue, 0 ms per call: payment + store + local overhead, the "base" time.

Targets: concurrent >= 3x faster than sequential (p50); concurrent p50 <= 1.3 x (25 ms +
base p50), i.e. the six creates cost about one round trip, not six.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._common import (REPO_ROOT, Proc, free_port, http_ok, median, parser, percentile, print_table,
                                print_targets, python_module, rest_client, start_emulator, target, write_results)
from benchmarks._loadgen import RequestFactory, run_load
from ordertasks.infra.devstack import seed_demo_catalogue
from tests.support.samples import EUR_CHECKOUT_BODY

NAME = "checkout_latency"
INJECTED_MS = 25.0
CATALOG = REPO_ROOT / "infra" / "tasks.toml"
ORDER = EUR_CHECKOUT_BODY
SETTINGS = (("concurrent", INJECTED_MS), ("sequential", INJECTED_MS), ("concurrent", 0.0))


def checkout_request() -> RequestFactory:
    """The same valid order each time (the server gives each a new order id)."""
    body = json.dumps(ORDER).encode()
    return lambda _index: (body, {"Content-Type": "application/json"})


def pause_catalog_queues(host: str) -> None:
    """Pause every catalog queue: nothing is dispatched, tasks keep their schedule."""
    from ordertasks.infra.config import load_catalog

    client, catalog = rest_client(host), load_catalog(CATALOG)
    for queue in catalog.queues:
        client.pause_queue(name=f"projects/{catalog.project}/locations/{catalog.region}/queues/{queue}")


def checkout_server(tmp: Path, host: str, mode: str) -> tuple[Proc, str]:
    """``ordertasks checkout`` on a free port with its own data directory."""
    port = free_port()
    data = tmp / f"checkout-{port}"
    env = {"ORDERTASKS_BACKEND": "local", "ORDERTASKS_DATA_DIR": str(data), "ORDERTASKS_CONFIG": str(CATALOG),
           "CLOUD_TASKS_EMULATOR_HOST": host, "ORDERTASKS_HANDLER_URL": "http://127.0.0.1:9/",
           "ORDERTASKS_ENQUEUE_MODE": mode, "ORDERTASKS_LOG_LEVEL": "WARNING"}
    seed_demo_catalogue({**os.environ, **env})   # the order's SKUs, at the prices it sends
    proc = Proc(python_module("cli", "checkout", "--port", str(port)), tmp / f"checkout-{port}.log", env=env)
    proc.start(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"))
    return proc, f"http://127.0.0.1:{port}"


def measure(tmp: Path, host: str, mode: str, requests: int) -> list[float]:
    """Latencies (ms) of ``requests`` sequential checkouts after a short warm-up."""
    proc, url = checkout_server(tmp, host, mode)
    try:
        warm = run_load(url + "/api/checkout", checkout_request(), count=5)
        if set(warm.statuses) != {201}:
            raise RuntimeError(f"checkout answered {dict(warm.statuses)}; see {proc.log_path}")
        result = run_load(url + "/api/checkout", checkout_request(), count=requests)
        if set(result.statuses) != {201}:
            raise RuntimeError(f"checkout answered {dict(result.statuses)}; see {proc.log_path}")
        return result.latencies_ms
    finally:
        proc.stop()


def generator_overhead(tmp: Path, host: str) -> float:
    """p50 ms of ``GET``-cheap requests through the same generator: its own cost per request."""
    proc, url = checkout_server(tmp, host, "concurrent")
    try:
        return percentile(run_load(url + "/api/not-there", checkout_request(), count=200).latencies_ms, 50)
    finally:
        proc.stop()


def main(argv: list[str] | None = None) -> int:
    """Measure, print, write ``results/checkout_latency.json``."""
    args = parser(NAME, __doc__).parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    requests = 40 if args.quick else 200
    runs: dict[str, list[dict[str, float]]] = {label(m, ms): [] for m, ms in SETTINGS}
    with tempfile.TemporaryDirectory(prefix="bench-checkout-") as name:
        tmp = Path(name)
        emulators = {ms: start_emulator(tmp, "--queues", str(CATALOG), "--inject-latency-ms", f"{ms:g}")
                     for ms in {ms for _, ms in SETTINGS}}
        try:
            for _, host in emulators.values():
                pause_catalog_queues(host)
            overhead = generator_overhead(tmp, emulators[0.0][1])
            for r in range(repeats):
                for mode, ms in SETTINGS:
                    ms_list = measure(tmp, emulators[ms][1], mode, requests)
                    runs[label(mode, ms)].append({"p50_ms": percentile(ms_list, 50), "p95_ms": percentile(ms_list, 95)})
                    print(f"  repeat {r + 1} {label(mode, ms)}: p50 {runs[label(mode, ms)][-1]['p50_ms']:.1f} ms",
                          flush=True)
        finally:
            for proc, _ in emulators.values():
                proc.stop()
    return report(args, repeats, requests, overhead, runs)


def label(mode: str, ms: float) -> str:
    """``concurrent@25ms`` and the like."""
    return f"{mode}@{ms:g}ms"


def report(args: Any, repeats: int, requests: int, overhead: float, runs: dict[str, list[dict[str, float]]]) -> int:
    """Table, targets, results file."""
    fig = {name: {k: median(r[k] for r in rs) for k in ("p50_ms", "p95_ms")} for name, rs in runs.items()}
    conc, seq, base = fig[label("concurrent", INJECTED_MS)], fig[label("sequential", INJECTED_MS)], \
        fig[label("concurrent", 0.0)]
    rows: list[tuple[Any, ...]] = [(name, f["p50_ms"], f["p95_ms"]) for name, f in fig.items()]
    rows.append(("load generator overhead (404 round trip)", overhead, ""))
    print_table(f"{NAME}: {requests} sequential checkouts per setting, median of {repeats}", rows,
                ("enqueue mode @ injected latency", "p50 ms", "p95 ms"))
    speedup = seq["p50_ms"] / conc["p50_ms"]
    bound = 1.3 * (INJECTED_MS + base["p50_ms"])
    targets = [target("sequential / concurrent p50", speedup, ">=", 3, "x"),
               target("concurrent p50 vs 1.3 x (25 ms + base)", conc["p50_ms"], "<=", bound, "ms")]
    print_targets(targets)
    write_results(NAME, {
        "parameters": {"injected_ms": INJECTED_MS, "requests": requests, "repeats": repeats, "concurrency": 1,
                       "kinds_per_order": 6, "quick": args.quick},
        "figures": {"by_setting": fig, "base_p50_ms": base["p50_ms"], "generator_overhead_ms": overhead,
                    "repeats": runs},
        "baseline": {"name": "ORDERTASKS_ENQUEUE_MODE=sequential", **seq},
        "ratio": speedup, "targets": targets})
    return 0


if __name__ == "__main__":
    sys.exit(main())
