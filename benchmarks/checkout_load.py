"""``checkout_load``: the orders/s the checkout sustains with p99 <= 100 ms, at 8, 32 and 128 clients.

    python -m benchmarks.checkout_load [--quick] [--inject-latency-ms MS] [--step-seconds S]

The local stack's producer side: ``ordertasks checkout`` (its own process, werkzeug's
threaded server, SQLite, the local payment gateway) against the Cloud Tasks emulator with
the catalog's queues paused, so the figure is the checkout alone (payment, order store,
six ``CreateTask`` calls over gRPC). ``--inject-latency-ms`` adds a round trip to every
emulator call (default 0: the local stack as it is; 25 models the real service).

For each client count, two steps, each ``--step-seconds`` long (15 s; 5 ``--quick``: at
50 orders/s a step holds ~750 answers, so its p99 is set by its ~8 slowest, not by one):

1. **saturation**: the clients send checkouts back to back (closed loop); its rate ``X`` is
   the most the checkout can do with that many clients.
2. **sustained at p99 <= 100 ms**: requests paced at a fixed rate (open loop,
   ``_loadgen.run_paced``: latency counted from when each request was due, so queueing
   shows), with at most that many in flight, at 90 %, 75 %, 60 % ... of ``X`` until a rate
   holds: every answer 201, p99 <= 100 ms, and at least 90 % of the rate achieved. That
   rate is the figure (0 when none holds); its sample count is reported with it.

Each (mode, repeat) gets a fresh emulator, and afterwards **every order's tasks are
checked**: the emulator's tasks (the queues are paused, so none is dispatched) grouped by
order id must cover every order answered 201 with all of the catalog's kinds, or the run
fails. CPU per order is measured over the saturation step for the checkout (the product),
the emulator (Cloud Tasks' stand-in) and this process (the load generator), each apart.

Baseline, same run, same steps, alternated with the product (ABBA over the repeats):
``ORDERTASKS_ENQUEUE_MODE=sequential`` (the six creates one after another instead of
concurrently). Target (issue 33): >= 50 orders/s at p99 <= 100 ms with 32 clients on
2 cores; 8 and 128 clients are reported.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks._common import (median, parser, percentile, print_table, print_targets, rest_client, start_emulator,
                                target, write_results)
from benchmarks._loadgen import LoadResult, run_load, run_paced
from benchmarks.checkout_latency import CATALOG, checkout_request, checkout_server, pause_catalog_queues

NAME = "checkout_load"
CLIENTS = (8, 32, 128)
MODES = ("concurrent", "sequential")
P99_LIMIT_MS = 100.0
TARGET_CLIENTS, TARGET_RATE = 32, 50.0
FRACTIONS = (0.9, 0.75, 0.6, 0.45, 0.3, 0.15)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """utime + stime of ``pid`` and its reaped children so far, in seconds (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / CLOCK_TICKS


class CpuMeter:
    """CPU of the checkout (the product), the emulator (Cloud Tasks' stand-in) and this
    process (the load generator) over one step."""

    def __init__(self, checkout: int, emulator: int) -> None:
        self.pids = {"checkout": checkout, "emulator": emulator}

    def sample(self) -> dict[str, float]:
        """Seconds of CPU so far, per part."""
        return {**{part: process_cpu(pid) for part, pid in self.pids.items()}, "load_generator": time.process_time()}


def _figures(result: LoadResult, cpu: dict[str, float]) -> dict[str, float]:
    created = result.statuses.get(201, 0)
    return {"orders_per_s": result.throughput, "p50_ms": percentile(result.latencies_ms, 50),
            "p99_ms": percentile(result.latencies_ms, 99), "samples": len(result.latencies_ms), "created": created,
            "errors": result.errors + sum(n for status, n in result.statuses.items() if status != 201),
            **{f"{part}_cpu_ms_per_order": seconds * 1000 / created if created else float("nan")
               for part, seconds in cpu.items()}}


def step(meter: CpuMeter, load: Any) -> dict[str, float]:
    """One load run (``load()``), its latency figures and the CPU each part spent per order."""
    before = meter.sample()
    result = load()
    after = meter.sample()
    return _figures(result, {part: after[part] - before[part] for part in before})


def _holds(figures: dict[str, float], rate: float) -> bool:
    return figures["errors"] == 0 and figures["p99_ms"] <= P99_LIMIT_MS and figures["orders_per_s"] >= 0.9 * rate


def sustained(url: str, clients: int, seconds: float, meter: CpuMeter) -> dict[str, Any]:
    """Saturation, then the highest paced rate that holds p99 <= 100 ms (see module docstring)."""
    saturation = step(meter, lambda: run_load(url, checkout_request(), concurrency=clients, duration=seconds))
    tried = []
    for fraction in FRACTIONS:
        rate = saturation["orders_per_s"] * fraction
        figures = {"rate": rate, **step(meter, lambda: run_paced(url, checkout_request(), clients, rate, seconds))}
        tried.append(figures)
        if _holds(figures, rate):
            return {"saturation": saturation, "sustained": figures, "tried": tried}
    return {"saturation": saturation, "sustained": None, "tried": tried}


def created_tasks(host: str) -> dict[str, set[str]]:
    """Order id -> the kinds the emulator holds a task for (queues paused: every task created)."""
    from ordertasks.infra.config import load_catalog

    client, catalog = rest_client(host), load_catalog(CATALOG)
    found: dict[str, set[str]] = defaultdict(set)
    for queue in catalog.queues:
        parent = f"projects/{catalog.project}/locations/{catalog.region}/queues/{queue}"
        for task in client.list_tasks(request={"parent": parent, "page_size": 1000}):
            ident = task.name.rsplit("/", 1)[1].split("-", 1)[1]       # <hash>-<order_id>-<kind>
            kind = next((k for k in catalog.kinds if ident.endswith("-" + k)), None)
            if kind is not None:
                found[ident[: -len(kind) - 1]].add(kind)
    return found


def verify_tasks(host: str, created: int) -> dict[str, int]:
    """Every order answered 201 has its tasks, each once: the emulator's tasks, grouped by order."""
    from ordertasks.infra.config import load_catalog

    kinds = set(load_catalog(CATALOG).kinds)
    found = created_tasks(host)
    missing = sum(len(kinds - got) for got in found.values())
    check = {"orders_answered_201": created, "orders_with_tasks": len(found), "tasks_missing": missing,
             "tasks": sum(len(got) for got in found.values())}
    if len(found) != created or missing:
        raise RuntimeError(f"the checkout answered 201 for {created} orders but the emulator holds tasks for "
                           f"{len(found)} of them, {missing} missing: {check}")
    return check


def measure_mode(tmp: Path, mode: str, seconds: float, latency_ms: float) -> dict[str, Any]:
    """Every client count against one checkout server in ``mode`` and a fresh emulator (after a
    warm-up); then every order's tasks checked."""
    emulator, host = start_emulator(tmp, "--queues", str(CATALOG), "--inject-latency-ms", f"{latency_ms:g}")
    try:
        pause_catalog_queues(host)
        proc, base = checkout_server(tmp, host, mode)
        try:
            url, meter = base + "/api/checkout", CpuMeter(proc.pid, emulator.pid)
            warm = run_load(url, checkout_request(), concurrency=4, count=40)
            if set(warm.statuses) != {201}:
                raise RuntimeError(f"checkout answered {dict(warm.statuses)}; see {proc.log_path}")
            by_clients = {clients: sustained(url, clients, seconds, meter) for clients in CLIENTS}
        finally:
            proc.stop()
        created = 40 + sum(s["created"] for r in by_clients.values() for s in (r["saturation"], *r["tried"]))
        return {"by_clients": by_clients, "tasks": verify_tasks(host, created)}
    finally:
        emulator.stop()


def main(argv: list[str] | None = None) -> int:
    """Measure, print, write ``results/checkout_load.json``."""
    p = parser(NAME, __doc__)
    p.add_argument("--inject-latency-ms", type=float, default=0.0, help="added to every emulator call (default 0)")
    p.add_argument("--step-seconds", type=float, default=None, help="length of each step (default 15; 5 quick)")
    args = p.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    seconds = args.step_seconds or (5.0 if args.quick else 15.0)
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="bench-checkout-load-") as name:
        for r in range(repeats):
            for mode in (MODES if r % 2 == 0 else MODES[::-1]):
                runs[mode].append(measure_mode(Path(name), mode, seconds, args.inject_latency_ms))
                print(f"  repeat {r + 1} {mode}: " + ", ".join(
                    f"{c} clients {_rate(res):.0f}/s" for c, res in runs[mode][-1]["by_clients"].items())
                    + f"; tasks checked for {runs[mode][-1]['tasks']['orders_answered_201']} orders", flush=True)
    return report(args, repeats, seconds, runs)


def _rate(result: dict[str, Any]) -> float:
    return float(result["sustained"]["orders_per_s"]) if result["sustained"] else 0.0


PER_ORDER = ("checkout_cpu_ms_per_order", "emulator_cpu_ms_per_order", "load_generator_cpu_ms_per_order")


def _medians(repeats: list[dict[str, Any]], clients: int) -> dict[str, float]:
    runs = [r["by_clients"][clients] for r in repeats]
    held = [r["sustained"] for r in runs if r["sustained"]]
    return {"sustained_orders_per_s": median(_rate(r) for r in runs),
            "p50_ms": median(h["p50_ms"] for h in held), "p99_ms": median(h["p99_ms"] for h in held),
            "samples": median(h["samples"] for h in held),
            "saturation_orders_per_s": median(r["saturation"]["orders_per_s"] for r in runs),
            "saturation_p99_ms": median(r["saturation"]["p99_ms"] for r in runs),
            **{k: median(r["saturation"][k] for r in runs) for k in PER_ORDER}}


def load_targets(fig: dict[str, dict[int, dict[str, float]]]) -> list[dict[str, Any]]:
    """>= 50 orders/s at p99 <= 100 ms with 32 clients; the other client counts reported (> 0)."""
    targets = []
    for c in CLIENTS:
        seq = fig["sequential"][c]
        targets.append(target(f"orders/s at p99 <= {P99_LIMIT_MS:g} ms, {c} clients",
                              fig["concurrent"][c]["sustained_orders_per_s"], ">=",
                              TARGET_RATE if c == TARGET_CLIENTS else 0, "orders/s",
                              baseline=f"sequential enqueue {seq['sustained_orders_per_s']:.0f} orders/s, same run"))
    return targets


def report(args: Any, repeats: int, seconds: float, runs: dict[str, list[dict[str, Any]]]) -> int:
    """Table, targets, results file."""
    fig = {mode: {c: _medians(rs, c) for c in CLIENTS} for mode, rs in runs.items()}
    rows = [(mode, c, f["sustained_orders_per_s"], f["p50_ms"], f["p99_ms"], f["samples"], f["saturation_orders_per_s"],
             f["saturation_p99_ms"], f["checkout_cpu_ms_per_order"], f["emulator_cpu_ms_per_order"],
             f["load_generator_cpu_ms_per_order"]) for mode, by in fig.items() for c, f in by.items()]
    print_table(f"{NAME}: checkouts/s at p99 <= {P99_LIMIT_MS:g} ms, {seconds:g}s per step, "
                f"{args.inject_latency_ms:g} ms injected per emulator call, median of {repeats}", rows,
                ("enqueue mode", "clients", "orders/s at p99<=100", "p50 ms", "p99 ms", "samples", "saturation/s",
                 "saturation p99 ms", "checkout CPU ms/order", "emulator CPU ms/order (stand-in)",
                 "load generator CPU ms/order"))
    checked = {m: [r["tasks"] for r in rs] for m, rs in runs.items()}
    print(f"every order's tasks verified in the emulator: "
          f"{sum(c['orders_answered_201'] for cs in checked.values() for c in cs)} orders, "
          f"{sum(c['tasks'] for cs in checked.values() for c in cs)} tasks, 0 missing")
    targets = load_targets(fig)
    print_targets(targets)
    write_results(NAME, {
        "parameters": {"clients": list(CLIENTS), "p99_limit_ms": P99_LIMIT_MS, "step_seconds": seconds,
                       "rate_fractions_of_saturation": list(FRACTIONS), "repeats": repeats, "quick": args.quick,
                       "inject_latency_ms": args.inject_latency_ms, "queues": "paused", "kinds_per_order": 6,
                       "cpu_per_order": "measured over the saturation step"},
        "figures": {"by_mode": {m: {str(c): f for c, f in by.items()} for m, by in fig.items()}, "tasks": checked,
                    "repeats": {m: [{str(c): v for c, v in r["by_clients"].items()} for r in rs]
                                for m, rs in runs.items()}},
        "baseline": {"name": "ORDERTASKS_ENQUEUE_MODE=sequential",
                     **{f"{c}_clients_orders_per_s": fig["sequential"][c]["sustained_orders_per_s"] for c in CLIENTS}},
        "ratio": _ratio(fig), "targets": targets})
    return 0


def _ratio(fig: dict[str, dict[int, dict[str, float]]]) -> float:
    """Concurrent / sequential sustained rate at the middle client count."""
    seq = fig["sequential"][CLIENTS[1]]["sustained_orders_per_s"]
    return fig["concurrent"][CLIENTS[1]]["sustained_orders_per_s"] / seq if seq else float("nan")


if __name__ == "__main__":
    sys.exit(main())
