"""Checkout latency with concurrent vs sequential enqueue, against the real emulator.

    python -m tests.producer.bench_checkout [--requests 50] [--latency-ms 0 25]

For each injected emulator latency, serves the app over HTTP (werkzeug, threaded) on SQLite
and sends N checkouts one after another, once with ``enqueue_concurrently`` on and once off,
printing p50/p90/max in milliseconds. Not a test (not collected): a figure for the notes.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import requests

from producer import wiring
from tests.producer.conftest import Emulator, LiveServer, build_stack, make_settings, order_body, pause_all


def _run(tmp: Path, emulator: Emulator, concurrent: bool, count: int) -> list[float]:
    stack = build_stack(tmp, emulator, enqueue_concurrently=concurrent)
    latencies: list[float] = []
    with LiveServer(stack.app) as live, requests.Session() as http:
        http.post(f"{live.url}/api/checkout", json=order_body(), timeout=30)  # warm up connections
        for _ in range(count):
            start = time.perf_counter()
            resp = http.post(f"{live.url}/api/checkout", json=order_body(), timeout=30)
            latencies.append((time.perf_counter() - start) * 1000)
            assert resp.status_code == 201, resp.text
    stack.enqueuer.close()
    stack.store.close()
    return latencies


def _line(label: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p90 = ms[int(len(ms) * 0.9) - 1]
    return f"{label:<32} p50 {statistics.median(ms):7.1f} ms   p90 {p90:7.1f} ms   max {ms[-1]:7.1f} ms"


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--latency-ms", type=int, nargs="+", default=[0, 25])
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request
    for latency in args.latency_ms:
        for concurrent in (True, False):
            with tempfile.TemporaryDirectory() as name:
                tmp = Path(name)
                emulator = Emulator(tmp, latency_ms=latency).start()
                try:
                    settings = make_settings(tmp, emulator.host)
                    pause_all(wiring.tasks_client(settings), settings.catalog())
                    ms = _run(tmp, emulator, concurrent, args.requests)
                finally:
                    emulator.stop()
            mode = "concurrent" if concurrent else "sequential"
            print(_line(f"latency {latency:>3} ms, {mode}", ms), flush=True)


if __name__ == "__main__":
    main()
