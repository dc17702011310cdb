"""``emulator_dispatch``: sustained dispatch rate of the emulator to a no-op HTTP receiver.

    python -m benchmarks.emulator_dispatch [--quick]

The workload: N tasks over Q queues (rate limit 500/s each, Cloud Tasks' maximum, so the
queues together allow Q x 500/s), created paused with the official client, then resumed;
once with the client's default gRPC transport and once with REST (same port).
The receiver (its own process) timestamps every delivery; the sustained rate is the middle
80 % of deliveries over the time they took (the first burst of saved tokens and the tail
are left out).

The baseline is the receiver's own ceiling, measured in the same run right before and right
after each repeat (their mean): the load generator (``_loadgen.py``, 64 keep-alive
connections) posting straight to the receiver, on the same cores, for a few seconds. No dispatcher can deliver faster
than its target accepts, so "dispatch rate / receiver ceiling" is what the emulator gets
out of the physical limit of the machine it runs on; the ratio of each repeat is taken
against the ceiling measured around it, then the median.

For reference (not a target), the peer emulator ``gcloud-tasks-emulator`` (PyPI, gRPC
only) given the same workload by the same driver script, run with the python of its own
venv ``benchmarks/.peer-venv`` (it pins old client versions), which this benchmark creates;
``--skip-peer`` leaves it out.

The second workload is the peer's own benchmark: tasks created one after another with the
official client (``_sequential_create.py``), on ours over gRPC and over REST and on the peer
over gRPC (it serves no REST), one after the other in each repeat, so every repeat compares
the three in the same window of the shared machine; medians over the repeats. If the peer
cannot be installed, this says so and reports ours alone. ``--workload`` runs one of the two.

Targets: >= 1500 tasks/s; >= 60 % of the receiver's ceiling, over gRPC and over REST; a
sequential CreateTask <= 2 ms over gRPC and over REST; sequential creates over gRPC at least
as fast as the peer's (ours / peer >= 1, same run).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from benchmarks._common import (BENCH_DIR, Proc, free_port, median, parser, port_open, print_table, print_targets,
                                start_emulator, target, write_results)
from benchmarks._loadgen import constant, run_load
from benchmarks._receiver import Receiver

NAME = "emulator_dispatch"
DRIVER = BENCH_DIR / "_tasks_driver.py"
SEQUENTIAL = BENCH_DIR / "_sequential_create.py"
PEER_VENV = BENCH_DIR / ".peer-venv"
PEER_PACKAGE = "gcloud-tasks-emulator==0.6.2"
RATE_PER_QUEUE = 500.0
TRANSPORTS = ("grpc", "rest")
WORKLOADS = ("dispatch", "sequential")
SEQUENTIAL_LIMIT_MS = 2.0


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
             transport: str, ceiling_seconds: float) -> list[dict[str, Any]]:
    """Repeats on ordertasks' emulator over one transport (fresh queues each time, one process),
    each preceded by a measurement of the receiver's ceiling under the same conditions."""
    emulator, host = start_emulator(tmp)
    try:
        return [_with_ceiling(receiver, ceiling_seconds,
                              lambda r=r: drive(sys.executable, host, transport, receiver, tasks, queues,
                                                f"ours-{transport}{r}", stall=10))
                for r in range(repeats)]
    finally:
        emulator.stop()


def _with_ceiling(receiver: Receiver, seconds: float, repeat: Any) -> dict[str, Any]:
    """Run ``repeat`` between two measurements of the receiver's ceiling; its share of their mean
    (the load of a shared machine moves within seconds: one measurement alone is a sample of it)."""
    before = receiver_capacity(receiver, seconds)
    figures: dict[str, Any] = repeat()
    after = receiver_capacity(receiver, seconds)
    ceiling = (before + after) / 2
    return {**figures, "receiver_ceiling_per_s": ceiling, "receiver_ceiling_samples": [before, after],
            "share_of_ceiling": figures["sustained_per_s"] / ceiling}


def run_peer(tmp: Path, receiver: Receiver, tasks: int, queues: int, repeats: int) -> list[dict[str, Any]]:
    """Repeats on the peer emulator, started from its own venv."""
    with peer_emulator(tmp) as endpoint:
        return [drive(peer_python(), endpoint, "grpc", receiver, tasks, queues, f"peer{r}", stall=20)
                for r in range(repeats)]


@contextmanager
def peer_emulator(tmp: Path) -> Iterator[str]:
    """The peer emulator running from its venv (installed on first use); yields ``host:port``."""
    peer_python()
    port = free_port()
    argv = [str(PEER_VENV / "bin" / "gcloud-tasks-emulator"), "start", "-p", str(port), "-q"]
    with Proc(argv, tmp / f"peer-{port}.log").start(lambda: port_open(port)):
        yield f"127.0.0.1:{port}"


def sequential_creates(python: Path | str, endpoint: str, transport: str, tasks: int, prefix: str) -> dict[str, Any]:
    """One run of the peers' workload: ``tasks`` CreateTask calls one after another."""
    argv = [str(python), str(SEQUENTIAL), "--endpoint", endpoint, "--transport", transport,
            "--tasks", str(tasks), "--prefix", prefix]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run_sequential(tmp: Path, tasks: int, repeats: int, skip_peer: bool) -> dict[str, list[dict[str, Any]]]:
    """The peers' workload, ours over gRPC and REST and the peer over gRPC, interleaved per repeat."""
    runs: dict[str, list[dict[str, Any]]] = {"grpc": [], "rest": [], "peer_grpc": []}
    emulator, host = start_emulator(tmp)
    try:
        with ExitStack() as stack:
            peer = None if skip_peer else _peer_or_none(stack, tmp)
            for r in range(repeats):
                for transport in TRANSPORTS:
                    runs[transport].append(sequential_creates(sys.executable, host, transport, tasks, f"seq-{transport}{r}"))
                if peer is not None:
                    runs["peer_grpc"].append(sequential_creates(peer_python(), peer, "grpc", tasks, f"seq-peer{r}"))
    finally:
        emulator.stop()
    return runs


def _peer_or_none(stack: ExitStack, tmp: Path) -> str | None:
    """The running peer's endpoint, or None (said on stdout) when it cannot be installed or started."""
    try:
        return stack.enter_context(peer_emulator(tmp))
    except (RuntimeError, OSError, TimeoutError) as exc:
        print(f"  the peer emulator is left out of the sequential workload: {exc}", flush=True)
        return None


def main(argv: list[str] | None = None) -> int:
    """Measure, print, write ``results/emulator_dispatch.json``."""
    p = parser(NAME, __doc__)
    p.add_argument("--skip-peer", action="store_true", help="leave out the peer emulator (a reference, no target)")
    p.add_argument("--workload", choices=WORKLOADS, action="append",
                   help="run only this workload (repeatable; default: both)")
    args = p.parse_args(argv)
    workloads = args.workload or list(WORKLOADS)
    repeats = args.repeats or (1 if args.quick else 3)
    tasks, queues = (2000, 8) if args.quick else (8000, 8)
    sequential_tasks = 300 if args.quick else 1000
    ceiling_seconds = 2.0 if args.quick else 4.0
    ours: dict[str, list[dict[str, Any]]] = {}
    peer: list[dict[str, Any]] = []
    sequential: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as name:
        tmp = Path(name)
        if "sequential" in workloads:  # medians of at least 3 even in a quick run: it is cheap
            sequential = run_sequential(tmp, sequential_tasks, max(repeats, 3), args.skip_peer)
        if "dispatch" in workloads:
            receiver = Receiver(tmp).start()
            try:
                ours = {t: run_ours(tmp, receiver, tasks, queues, repeats, t, ceiling_seconds) for t in TRANSPORTS}
                peer = [] if args.skip_peer else run_peer(tmp, receiver, tasks, queues, repeats)
            finally:
                receiver.stop()
    parameters = {"tasks": tasks, "queues": queues, "rate_per_queue": RATE_PER_QUEUE, "repeats": repeats,
                  "quick": args.quick, "peer": None if args.skip_peer else PEER_PACKAGE,
                  "ceiling_load": "64 connections, closed loop", "workloads": workloads,
                  "sequential_tasks": sequential_tasks}
    payload = report(tasks, queues, repeats, ours, peer) if ours else {"figures": {}, "targets": []}
    if sequential:
        add_sequential(payload, sequential_report(sequential, sequential_tasks))
    write_results(NAME, {"parameters": parameters, **payload})
    return 0


def report(tasks: int, queues: int, repeats: int, ours_by_transport: dict[str, list[dict[str, Any]]],
           peer: list[dict[str, Any]]) -> dict[str, Any]:
    """The dispatch workload's table and targets; returns its part of the results file.
    The headline figure is gRPC, every client's default."""
    fig = {t: _medians(runs) for t, runs in ours_by_transport.items()}
    peer_rate = median(r["sustained_per_s"] for r in peer)
    rows: list[tuple[Any, ...]] = [
        (f"ordertasks emulator, {t}", f["sustained_per_s"], f["overall_per_s"], f["creates_per_s"], f["delivered"],
         f["receiver_ceiling_per_s"], f"{f['share_of_ceiling'] * 100:.1f} %") for t, f in fig.items()]
    if peer:
        rows.append((f"peer {PEER_PACKAGE}, grpc (reference)", peer_rate, median(r["overall_per_s"] for r in peer),
                     median(r["creates_per_s"] for r in peer), min(r["delivered"] for r in peer), "", ""))
    print_table(f"{NAME}: {tasks} tasks over {queues} queues x {RATE_PER_QUEUE:g}/s, median of {repeats}", rows,
                ("system", "sustained/s", "overall/s", "creates/s", "delivered", "receiver ceiling/s", "share"))
    cap = queues * RATE_PER_QUEUE
    print(f"(the queues' combined rate limit, {queues} x {RATE_PER_QUEUE:g}/s = {cap:g}/s plus each queue's first "
          f"burst, bounds this workload: at the receiver ceilings measured its share can reach at most "
          f"{cap / max(f['receiver_ceiling_per_s'] for f in fig.values()) * 100:.0f} %, whatever the emulator does)")
    targets = [target(f"dispatch rate ({t})", f["sustained_per_s"], ">=", 1500, "tasks/s") for t, f in fig.items()]
    targets += [target(f"share of the receiver's ceiling ({t})", f["share_of_ceiling"] * 100, ">=", 60, "%",
                       baseline=f"receiver alone {f['receiver_ceiling_per_s']:.0f} req/s") for t, f in fig.items()]
    if peer:
        targets += [target(f"dispatch, ours / peer ({t})", f["sustained_per_s"] / peer_rate, ">=", 1, "x",
                           baseline=f"peer {peer_rate:.0f} tasks/s, same run") for t, f in fig.items()]
    print_targets(targets)
    return {
        "figures": {"sustained_per_s": fig["grpc"]["sustained_per_s"],
                    "rest_sustained_per_s": fig["rest"]["sustained_per_s"],
                    "receiver_ceiling_per_s": fig["grpc"]["receiver_ceiling_per_s"],
                    "by_transport": fig, "peer_sustained_per_s": peer_rate, "ours": ours_by_transport["grpc"],
                    "ours_rest": ours_by_transport["rest"], "peer": peer},
        "baseline": {"name": "the no-op receiver's own ceiling (load generator, same run)",
                     "receiver_ceiling_per_s": fig["grpc"]["receiver_ceiling_per_s"]},
        "ratio": fig["grpc"]["share_of_ceiling"], "targets": targets}


def sequential_report(runs: dict[str, list[dict[str, Any]]], tasks: int) -> dict[str, Any]:
    """The peers' workload: table, targets, figures (medians; the ratio ours / peer per repeat, then its median)."""
    fig = {k: {"tasks_per_s": median(r["tasks_per_s"] for r in v), "ms_per_create": median(r["ms_per_create"] for r in v),
               "repeats": [round(r["tasks_per_s"], 1) for r in v]} for k, v in runs.items() if v}
    peer = runs["peer_grpc"]
    ratios = {t: median(o["tasks_per_s"] / p["tasks_per_s"] for o, p in zip(runs[t], peer)) for t in TRANSPORTS} if peer else {}
    rows: list[tuple[Any, ...]] = [
        (f"ordertasks emulator, {t}", fig[t]["tasks_per_s"], fig[t]["ms_per_create"],
         f"{ratios[t]:.2f}" if peer else "peer not run", ", ".join(map(str, fig[t]["repeats"]))) for t in TRANSPORTS]
    rows.append((f"peer {PEER_PACKAGE}, grpc", fig["peer_grpc"]["tasks_per_s"], fig["peer_grpc"]["ms_per_create"], "1",
                 ", ".join(map(str, fig["peer_grpc"]["repeats"]))) if peer else
                (f"peer {PEER_PACKAGE}", "not installed or not started: ours alone", "", "", ""))
    rows.append((f"peer {PEER_PACKAGE}, rest", "serves no REST", "", "", ""))
    print_table(f"{NAME}, sequential creates (the peers' workload): {tasks} one after another, median of "
                f"{len(runs['grpc'])}", rows, ("system", "tasks/s", "ms per create", "ours / peer grpc", "repeats"))
    targets = [target(f"sequential CreateTask ({t})", fig[t]["ms_per_create"], "<=", SEQUENTIAL_LIMIT_MS, "ms")
               for t in TRANSPORTS]
    if peer:
        targets.append(target("sequential creates, ours / peer (grpc)", ratios["grpc"], ">=", 1.0, "x",
                              baseline=f"peer {fig['peer_grpc']['tasks_per_s']:.0f} tasks/s, same run"))
    print_targets(targets)
    return {"figures": fig, "ratio_to_peer": ratios, "runs": runs, "targets": targets}


def add_sequential(payload: dict[str, Any], sequential: dict[str, Any]) -> None:
    """Fold the sequential workload's part into the results file's payload."""
    payload["figures"]["sequential"] = {k: sequential[k] for k in ("figures", "ratio_to_peer", "runs")}
    payload["targets"] = payload["targets"] + sequential["targets"]
    payload.setdefault("baseline", {"name": f"peer {PEER_PACKAGE} (sequential creates, same run)"})
    payload.setdefault("ratio", sequential["ratio_to_peer"].get("grpc"))


def _medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Median of each figure over the repeats (the fewest delivered for ``delivered``)."""
    keys = ("sustained_per_s", "overall_per_s", "creates_per_s", "receiver_ceiling_per_s", "share_of_ceiling")
    return {**{k: median(r[k] for r in runs) for k in keys}, "delivered": min(r["delivered"] for r in runs)}


if __name__ == "__main__":
    sys.exit(main())
