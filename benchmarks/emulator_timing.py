"""``emulator_timing``: how punctually and how evenly the emulator dispatches.

    python -m benchmarks.emulator_timing [--quick]

Lateness: N tasks whose ``scheduleTime`` values are 5 ms apart (200 tasks/s), all created
ahead of their time on a running queue (rate limit 500/s, so only the schedule holds them).
The receiver (its own process) records arrival - ``X-CloudTasks-TaskETA`` for each: the
dispatch lateness plus one loopback HTTP hop. Baseline, same run: an ideal scheduler, an
asyncio loop in this process that sleeps until each ETA and then posts the same request
to the same receiver, i.e. the floor that Python timers and the hop allow.

Rate: M tasks on a paused queue with ``maxDispatchesPerSecond`` = 50 and ``maxBurstSize``
= 10, then resumed; the achieved rate is measured after the first burst of saved tokens.

Targets: lateness p99 < 20 ms; achieved rate within +/- 5 % of 50/s.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks._common import (BENCH_DIR, median, parser, percentile, print_table, print_targets, start_emulator,
                                target, wait_for, write_results)
from benchmarks._receiver import ETA_HEADER, Receiver

NAME = "emulator_timing"
DRIVER = BENCH_DIR / "_tasks_driver.py"
SCHEDULED_RATE = 200.0
LIMITED_RATE, LIMITED_BURST = 50.0, 10


def driver(host: str, receiver: Receiver, *extra: str) -> dict[str, Any]:
    """Run the workload driver against the emulator; its JSON report."""
    argv = [sys.executable, str(DRIVER), "--endpoint", host, "--url", receiver.url, "--queues", "1", *extra]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def lateness_ms(arrivals: list[tuple[float, float | None]]) -> list[float]:
    """arrival - ETA of each delivery, in ms."""
    return [(a - e) * 1000 for a, e in arrivals if e is not None]


def emulator_lateness(host: str, receiver: Receiver, tasks: int, prefix: str) -> list[float]:
    """One repeat of the scheduled workload on the emulator."""
    receiver.reset()
    eta_start = time.time() + tasks / 300 + 3  # creation (~600/s) and driver start-up finish before the first ETA
    driver(host, receiver, "--tasks", str(tasks), "--rate", "500", "--burst", "500", "--prefix", prefix,
           "--no-pause", "--eta-start", f"{eta_start:.6f}", "--eta-step", str(1 / SCHEDULED_RATE))
    wait_for(lambda: receiver.count() >= tasks, timeout=eta_start - time.time() + tasks / SCHEDULED_RATE + 30,
             what="every scheduled delivery")
    return lateness_ms(receiver.arrivals())


async def _ideal(url: str, etas: list[float]) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def warm() -> None:  # open the pool first, as the emulator's is open after its start
            async with session.post(url, data=b"") as resp:
                await resp.read()
        await asyncio.gather(*[warm() for _ in range(16)])

        async def one(eta: float) -> None:
            await asyncio.sleep(max(0.0, eta - time.time()))
            async with session.post(url, data=b'{"kind":"noop"}', headers={ETA_HEADER: f"{eta:.6f}"}) as resp:
                await resp.read()
        await asyncio.gather(*[one(eta) for eta in etas])


def ideal_lateness(receiver: Receiver, tasks: int) -> list[float]:
    """The baseline: an asyncio timer per ETA, then the same POST."""
    receiver.reset()
    start = time.time() + 2
    asyncio.run(_ideal(receiver.url, [start + i / SCHEDULED_RATE for i in range(tasks)]))
    wait_for(lambda: receiver.count() >= tasks, timeout=30, what="baseline deliveries")
    return lateness_ms(receiver.arrivals())


def limited_rate(host: str, receiver: Receiver, tasks: int, prefix: str) -> float:
    """Achieved dispatches/s on a queue limited to 50/s, after its first burst."""
    receiver.reset()
    driver(host, receiver, "--tasks", str(tasks), "--rate", str(LIMITED_RATE), "--burst", str(LIMITED_BURST),
           "--prefix", prefix)
    wait_for(lambda: receiver.count() >= tasks, timeout=tasks / LIMITED_RATE + 30, what="rate-limited deliveries")
    times = sorted(a for a, _ in receiver.arrivals())
    steady = times[LIMITED_BURST:]
    return (len(steady) - 1) / (steady[-1] - steady[0])


def main(argv: list[str] | None = None) -> int:
    """Measure, print, write ``results/emulator_timing.json``."""
    args = parser(NAME, __doc__).parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    scheduled, limited = (600, 150) if args.quick else (2000, 500)
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-timing-") as name:
        tmp = Path(name)
        receiver = Receiver(tmp).start()
        emulator, host = start_emulator(tmp)
        try:
            for r in range(repeats):
                late = emulator_lateness(host, receiver, scheduled, f"late{r}")
                base = ideal_lateness(receiver, scheduled)
                rate = limited_rate(host, receiver, limited, f"rate{r}")
                runs.append({"p50_ms": percentile(late, 50), "p99_ms": percentile(late, 99), "max_ms": max(late),
                             "ideal_p50_ms": percentile(base, 50), "ideal_p99_ms": percentile(base, 99),
                             "rate_per_s": rate})
                print(f"  repeat {r + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in runs[-1].items()), flush=True)
        finally:
            emulator.stop()
            receiver.stop()
    return report(args, repeats, scheduled, limited, runs)


def report(args: Any, repeats: int, scheduled: int, limited: int, runs: list[dict[str, float]]) -> int:
    """Table, targets, results file."""
    fig = {k: median(r[k] for r in runs) for k in runs[0]}
    rows = [("emulator", fig["p50_ms"], fig["p99_ms"], fig["max_ms"]),
            ("ideal asyncio scheduler (baseline)", fig["ideal_p50_ms"], fig["ideal_p99_ms"], "")]
    print_table(f"{NAME}: lateness at {SCHEDULED_RATE:g} tasks/s, {scheduled} tasks, median of {repeats}", rows,
                ("scheduler", "p50 ms", "p99 ms", "max ms"))
    error = (fig["rate_per_s"] - LIMITED_RATE) / LIMITED_RATE * 100
    print_table(f"{NAME}: rate limit {LIMITED_RATE:g}/s, {limited} tasks", [(fig["rate_per_s"], f"{error:+.2f} %")],
                ("achieved/s", "error"))
    targets = [target("lateness p99", fig["p99_ms"], "<", 20, "ms"),
               target("rate error", abs(error), "<=", 5, "%")]
    print_targets(targets)
    ratio = fig["p99_ms"] / fig["ideal_p99_ms"] if fig["ideal_p99_ms"] > 0 else float("inf")
    write_results(NAME, {
        "parameters": {"scheduled_rate": SCHEDULED_RATE, "scheduled_tasks": scheduled, "rate_limit": LIMITED_RATE,
                       "burst": LIMITED_BURST, "rate_tasks": limited, "repeats": repeats, "quick": args.quick},
        "figures": {**fig, "rate_error_percent": error, "repeats": runs},
        "baseline": {"name": "ideal asyncio scheduler + same POST", "p50_ms": fig["ideal_p50_ms"],
                     "p99_ms": fig["ideal_p99_ms"]},
        "ratio": ratio, "targets": targets})
    return 0


if __name__ == "__main__":
    sys.exit(main())
