"""``emulator_dispatch``: sustained dispatch rate of the emulator to a no-op HTTP receiver.

    python -m benchmarks.emulator_dispatch [--quick]

The workload: N tasks over Q queues (rate limit 500/s each, Cloud Tasks' maximum, so the
queues together allow Q x 500/s), created paused with the official client, then resumed;
once with the client's default gRPC transport and once with REST (same port).
The receiver (its own process) timestamps every delivery; the sustained rate is the middle
80 % of deliveries over the time they took (the first burst of saved tokens and the tail
are left out). The baseline is the peer emulator ``gcloud-tasks-emulator`` (PyPI, gRPC
only) given the same workload by the same driver script, run with the python of its own
venv ``benchmarks/.peer-venv`` (it pins old client versions), which this benchmark creates.
A load-generator check posts straight to the receiver to show it is not the limit.

Targets: >= 1500 tasks/s; >= 10x the peer.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

from benchmarks._common import (BENCH_DIR, Proc, free_port, median, parser, port_open, print_table, print_targets,
                                start_emulator, target, write_results)
from benchmarks._loadgen import constant, run_load
from benchmarks._receiver import Receiver

NAME = "emulator_dispatch"
DRIVER = BENCH_DIR / "_tasks_driver.py"
PEER_VENV = BENCH_DIR / ".peer-venv"
PEER_PACKAGE = "gcloud-tasks-emulator==0.6.2"
RATE_PER_QUEUE = 500.0
TRANSPORTS = ("grpc", "rest")


def peer_python() -> Path:
    """The peer venv's python, creating the venv and installing the peer on first use."""
    python = PEER_VENV / "bin" / "python"
    marker = PEER_VENV / f".installed-{PEER_PACKAGE}"
    if not marker.exists():
        print(f"installing {PEER_PACKAGE} into {PEER_VENV.relative_to(BENCH_DIR.parent)} ...", flush=True)
        venv.create(PEER_VENV, with_pip=True, clear=True)
        log = PEER_VENV / "pip.log"
        with open(log, "wb") as out:  # pip's chatter goes to a file; a failure names it
            done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                   PEER_PACKAGE], stdout=out, stderr=subprocess.STDOUT)
        if done.returncode:
            raise RuntimeError(f"could not install {PEER_PACKAGE} into {PEER_VENV}; see {log}")
        marker.touch()
    return python


def sustained_rate(arrivals: list[float]) -> float:
    """Deliveries per second over the middle 80 % of ``arrivals`` (sorted times)."""
    n = len(arrivals)
    if n < 10:
        return float("nan")
    low, high = int(n * 0.1), int(n * 0.9) - 1
    return (high - low) / max(arrivals[high] - arrivals[low], 1e-9)


def drive(python: Path | str, endpoint: str, transport: str, receiver: Receiver, tasks: int, queues: int,
          prefix: str, stall: float) -> dict[str, Any]:
    """One repeat: create + release the workload, wait until every task arrived (or progress stalls)."""
    receiver.reset()
    argv = [str(python), str(DRIVER), "--endpoint", endpoint, "--transport", transport, "--url", receiver.url,
            "--queues", str(queues), "--tasks", str(tasks), "--rate", str(RATE_PER_QUEUE), "--prefix", prefix]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=600)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    _wait_all(receiver, tasks, stall)
    times = sorted(a for a, _ in receiver.arrivals())
    whole = (len(times) - 1) / max(times[-1] - report["resumed_at"], 1e-9) if times else 0.0
    return {"delivered": len(times), "sustained_per_s": sustained_rate(times), "overall_per_s": whole,
            "creates_per_s": tasks / report["create_seconds"]}


def _wait_all(receiver: Receiver, tasks: int, stall: float) -> None:
    """Until ``tasks`` arrived, or no delivery for ``stall`` seconds."""
    last, last_change = -1, time.monotonic()
    while True:
        count = receiver.count()
        if count >= tasks:
            return
        if count != last:
            last, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > stall:
            print(f"  stalled at {count}/{tasks} deliveries", flush=True)
            return
        time.sleep(0.1)


def receiver_capacity(receiver: Receiver, seconds: float) -> float:
    """Requests/s the load generator gets straight from the receiver (its ceiling, not ours)."""
    result = run_load(receiver.url, constant(b'{"kind":"noop"}'), concurrency=64, duration=seconds)
    receiver.reset()
    return result.throughput


def run_ours(tmp: Path, receiver: Receiver, tasks: int, queues: int, repeats: int,
             transport: str) -> list[dict[str, Any]]:
    """Repeats on ordertasks' emulator over one transport (fresh queues each time, one process)."""
    emulator, host = start_emulator(tmp)
    try:
        return [drive(sys.executable, host, transport, receiver, tasks, queues, f"ours-{transport}{r}", stall=10)
                for r in range(repeats)]
    finally:
        emulator.stop()


def run_peer(tmp: Path, receiver: Receiver, tasks: int, queues: int, repeats: int) -> list[dict[str, Any]]:
    """Repeats on the peer emulator, started from its own venv."""
    python = peer_python()
    port = free_port()
    argv = [str(PEER_VENV / "bin" / "gcloud-tasks-emulator"), "start", "-p", str(port), "-q"]
    with Proc(argv, tmp / "peer.log").start(lambda: port_open(port)):
        return [drive(python, f"127.0.0.1:{port}", "grpc", receiver, tasks, queues, f"peer{r}", stall=20)
                for r in range(repeats)]


def main(argv: list[str] | None = None) -> int:
    """Measure, print, write ``results/emulator_dispatch.json``."""
    args = parser(NAME, __doc__).parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    tasks, queues = (2000, 8) if args.quick else (8000, 8)
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as name:
        tmp = Path(name)
        receiver = Receiver(tmp).start()
        try:
            capacity = receiver_capacity(receiver, 2 if args.quick else 4)
            ours = {t: run_ours(tmp, receiver, tasks, queues, repeats, t) for t in TRANSPORTS}
            peer = run_peer(tmp, receiver, tasks, queues, repeats)
        finally:
            receiver.stop()
    return report(args, tasks, queues, repeats, capacity, ours, peer)


def report(args: Any, tasks: int, queues: int, repeats: int, capacity: float,
           ours_by_transport: dict[str, list[dict[str, Any]]], peer: list[dict[str, Any]]) -> int:
    """Table, targets, results file.  The headline figure is gRPC, every client's default."""
    ours = ours_by_transport["grpc"]
    ours_rate = median(r["sustained_per_s"] for r in ours)
    rest_rate = median(r["sustained_per_s"] for r in ours_by_transport["rest"])
    peer_rate = median(r["sustained_per_s"] for r in peer)
    ratio = ours_rate / peer_rate if peer_rate else float("inf")
    runs_by_label = [(f"ordertasks emulator, {t}", ours_by_transport[t]) for t in TRANSPORTS]
    rows: list[tuple[Any, ...]] = [(label, median(r["sustained_per_s"] for r in runs), median(r["overall_per_s"] for r in runs),
             median(r["creates_per_s"] for r in runs), min(r["delivered"] for r in runs))
            for label, runs in (*runs_by_label, (f"peer {PEER_PACKAGE}, grpc", peer))]
    rows.append(("receiver alone (load generator, 64 conns)", capacity, "", "", ""))
    print_table(f"{NAME}: {tasks} tasks over {queues} queues x {RATE_PER_QUEUE:g}/s, median of {repeats}", rows,
                ("system", "sustained/s", "overall/s", "creates/s", "delivered"))
    targets = [target("dispatch rate (gRPC)", ours_rate, ">=", 1500, "tasks/s"),
               target("dispatch rate (REST)", rest_rate, ">=", 1500, "tasks/s"),
               target("ratio to peer (gRPC)", ratio, ">=", 10, "x")]
    print_targets(targets)
    write_results(NAME, {
        "parameters": {"tasks": tasks, "queues": queues, "rate_per_queue": RATE_PER_QUEUE, "repeats": repeats,
                       "quick": args.quick, "peer": PEER_PACKAGE},
        "figures": {"sustained_per_s": ours_rate, "rest_sustained_per_s": rest_rate, "peer_sustained_per_s": peer_rate,
                    "receiver_capacity_per_s": capacity, "ours": ours, "ours_rest": ours_by_transport["rest"],
                    "peer": peer},
        "baseline": {"name": f"peer emulator {PEER_PACKAGE}", "sustained_per_s": peer_rate},
        "ratio": ratio, "targets": targets})
    return 0


if __name__ == "__main__":
    sys.exit(main())
