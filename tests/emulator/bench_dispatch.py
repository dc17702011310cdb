"""First dispatch-throughput figure for the emulator (not a test; run it by hand).

    python -m tests.emulator.bench_dispatch [--tasks 2000] [--queues 4] [--rate 500]

Starts the emulator as a subprocess (``--quiet``), a no-op aiohttp receiver in this
process, creates the tasks with the official client on paused queues, resumes them and
reports deliveries per second plus lateness (arrival minus ``X-CloudTasks-TaskETA``) for a
second batch scheduled a little in the future.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web

from tests.emulator.conftest import PARENT, Emulator, start_emulator
from tests.support.servers import ServerProcess, wait_until


class NoOpReceiver:
    """aiohttp server answering 200 at once, recording (arrival, ETA) per request."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, float]] = []
        self.port = 0
        self._ready = threading.Event()
        threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True).start()
        self._ready.wait()

    async def _serve(self) -> None:
        async def handle(request: web.Request) -> web.Response:
            self.arrivals.append((time.time(), float(request.headers["X-CloudTasks-TaskETA"])))
            return web.Response()
        runner = web.AppRunner(web.Application(), access_log=None)
        runner.app.router.add_post("/{tail:.*}", handle)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        await asyncio.Event().wait()


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``."""
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def create_all(client, queues: list[str], url: str, count: int, eta: float | None) -> float:  # type: ignore[no-untyped-def]
    """Create ``count`` tasks round-robin over ``queues`` with 16 client threads; return creates/s."""
    def one(i: int) -> None:
        task: dict = {"http_request": {"url": url, "body": b'{"kind":"noop"}'}}
        if eta is not None:
            task["schedule_time"] = {"seconds": int(eta + i * 0.0005), "nanos": int(((eta + i * 0.0005) % 1) * 1e9)}
        client.create_task(parent=queues[i % len(queues)], task=task)
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(count)))
    return count / (time.monotonic() - started)


def attach(port: int) -> Emulator:
    """An emulator started elsewhere (e.g. under a profiler); ``stop()`` leaves it running."""
    return Emulator(port, Path(), Path(), ServerProcess([], port))


def main(argv: list[str]) -> int:
    """Run the benchmark and print the figures."""
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=int, default=2000)
    p.add_argument("--queues", type=int, default=4)
    p.add_argument("--rate", type=float, default=500)
    p.add_argument("--port", type=int, help="use an emulator already listening on this port")
    args = p.parse_args(argv)
    receiver = NoOpReceiver()
    url = f"http://127.0.0.1:{receiver.port}/noop"
    with tempfile.TemporaryDirectory() as tmp:
        emu = attach(args.port) if args.port else start_emulator(Path(tmp), extra=["--quiet"])
        try:
            client = emu.client()
            queues = [f"{PARENT}/queues/bench-{i}" for i in range(args.queues)]
            for name in queues:
                client.create_queue(parent=PARENT, queue={"name": name, "rate_limits": {
                    "max_dispatches_per_second": args.rate, "max_burst_size": int(args.rate),
                    "max_concurrent_dispatches": 1000}})
                client.pause_queue(name=name)
            creates = create_all(client, queues, url, args.tasks, None)
            started = time.time()
            for name in queues:
                client.resume_queue(name=name)
            wait_until(lambda: len(receiver.arrivals) >= args.tasks, timeout=120, interval=0.01, what="all deliveries")
            elapsed = receiver.arrivals[-1][0] - started
            print(f"creates: {creates:.0f}/s (official client, 16 threads)")
            print(f"throughput: {args.tasks} tasks over {args.queues} queues (rate {args.rate:g}/s each) "
                  f"in {elapsed:.2f}s = {args.tasks / elapsed:.0f} dispatches/s")
            receiver.arrivals.clear()
            eta = time.time() + args.tasks / creates + 2  # every task is created before its ETA
            create_all(client, queues, url, args.tasks, eta)
            wait_until(lambda: len(receiver.arrivals) >= args.tasks, timeout=120, interval=0.01, what="scheduled batch")
            late = [(arrival - due) * 1000 for arrival, due in receiver.arrivals]
            print(f"lateness (scheduled batch, 2000/s of ETAs): p50 {percentile(late, 50):.1f} ms, "
                  f"p99 {percentile(late, 99):.1f} ms, max {max(late):.1f} ms, min {min(late):.1f} ms")
        finally:
            emu.process.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
