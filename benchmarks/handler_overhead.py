"""``handler_overhead``: what the task handler adds over a bare Cloud Function.

    python -m benchmarks.handler_overhead [--quick]

Both functions run under functions-framework as it runs in production (gunicorn, its
default worker and threads), each in its own process, driven by the same load generator:

- the handler (``_handler_function.py``): the real ``handle_task`` built by
  ``functions.main.build_handler`` with OIDC verification on, the SQLite store, and the
  ``record_analytics`` effect replaced by a no-op. Every request carries a distinct order id
  (so each is a real claim + complete, never a duplicate) and a token from a pool larger
  than the verifier's cache (so each is a real RS256 verification, as with fresh tokens
  minted per dispatch). The tokens come from a benchmark issuer whose certificates are
  served on loopback (``tests/support/issuer.py``).
- the baseline (``_bare_function.py``): reads the body, answers 200; it is sent the very
  same requests (body, token, headers).

Latency: one request at a time, p50 of each; added latency = handler p50 - bare p50.
Throughput: 16 concurrent connections for a fixed time; handler req/s / bare req/s.

Targets: p50 added latency <= 1.5 ms; handler throughput >= 50 % of bare.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import (BENCH_DIR, Proc, free_port, median, parser, percentile, port_open, print_table,
                                print_targets, python_module, target, write_results)
from benchmarks._loadgen import RequestFactory, run_load

NAME = "handler_overhead"
DISPATCHER_EMAIL = "bench-dispatcher@bench-project.iam.gserviceaccount.com"
TOKEN_POOL = 4096 + 104  # > the verifier's cache of 4096: every token is verified again
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


ORDERS_PER_RUN = 40_000


def store_orders(data_dir: Path, tags: list[str]) -> None:
    """Task bodies are references: the handler reads each order, so store every one it will see."""
    from ordertasks.handlers.backends.sqlite import SqliteStore
    from tests.support.orders import store_paid_order

    data_dir.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(data_dir / "ordertasks.db")
    for tag in tags:
        for index in range(ORDERS_PER_RUN):
            store_paid_order(store, f"bench-{tag}-{index}", SNAPSHOT)


def task_requests(tokens: list[str], tag: str) -> RequestFactory:
    """Deliveries of the no-op kind, each for a new (stored) order, each with the next token."""
    from ordertasks.handlers.contract import encode

    def make(index: int) -> tuple[bytes, dict[str, str]]:
        order_id = f"bench-{tag}-{index % ORDERS_PER_RUN}"
        return encode("record_analytics", order_id), {
            "Content-Type": "application/json", "Authorization": f"Bearer {tokens[index % len(tokens)]}",
            "X-CloudTasks-QueueName": "ordertasks-analytics", "X-CloudTasks-TaskName": f"x-{order_id}",
            "X-CloudTasks-TaskRetryCount": "0", "X-CloudTasks-TaskExecutionCount": "0",
            "X-CloudTasks-TaskETA": f"{time.time():.6f}"}
    return make


def measure(url: str, make: RequestFactory, requests: int, seconds: float) -> dict[str, float]:
    """Warm-up, then sequential latency and concurrent throughput."""
    warm = run_load(url, make, concurrency=4, count=50)
    _check(warm.statuses, url)
    latency = run_load(url, make, concurrency=1, count=requests)
    load = run_load(url, make, concurrency=THROUGHPUT_CONCURRENCY, duration=seconds)
    _check(latency.statuses + load.statuses, url)
    return {"p50_ms": percentile(latency.latencies_ms, 50), "p95_ms": percentile(latency.latencies_ms, 95),
            "throughput_per_s": load.throughput}


def _check(statuses: Any, url: str) -> None:
    if set(statuses) != {200}:
        raise RuntimeError(f"{url} answered {dict(statuses)}")


def main(argv: list[str] | None = None) -> int:
    """Measure, print, write ``results/handler_overhead.json``."""
    from tests.support.issuer import TestIssuer

    args = parser(NAME, __doc__).parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    requests, seconds = (500, 4.0) if args.quick else (2000, 10.0)
    runs: dict[str, list[dict[str, float]]] = {"handler": [], "bare": []}
    with tempfile.TemporaryDirectory(prefix="bench-handler-") as name:
        tmp = Path(name)
        issuer = TestIssuer(audience="placeholder", email=DISPATCHER_EMAIL)
        try:
            bare, bare_url = function_server(tmp, "_bare_function.py", "bare", {})
            started = time.monotonic()
            store_orders(tmp / "handler-data", [f"r{r}" for r in range(repeats)])
            print(f"  stored {repeats * ORDERS_PER_RUN} orders in {time.monotonic() - started:.1f}s", flush=True)
            handler, handler_url = start_handler(tmp, issuer)
            issuer.audience = handler_url
            started = time.monotonic()
            tokens = mint_tokens(issuer, TOKEN_POOL)
            print(f"  minted {len(tokens)} tokens in {time.monotonic() - started:.1f}s", flush=True)
            try:
                for r in range(repeats):
                    # The bare function gets the very same requests: equal parsing work on both sides.
                    runs["bare"].append(measure(bare_url, task_requests(tokens, f"b{r}"), requests, seconds))
                    runs["handler"].append(measure(handler_url, task_requests(tokens, f"r{r}"), requests, seconds))
                    print(f"  repeat {r + 1}: handler {runs['handler'][-1]}, bare {runs['bare'][-1]}", flush=True)
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


def report(args: Any, repeats: int, requests: int, seconds: float, runs: dict[str, list[dict[str, float]]]) -> int:
    """Table, targets, results file."""
    fig = {name: {k: median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}
    added = fig["handler"]["p50_ms"] - fig["bare"]["p50_ms"]
    share = fig["handler"]["throughput_per_s"] / fig["bare"]["throughput_per_s"]
    rows = [(name, f["p50_ms"], f["p95_ms"], f["throughput_per_s"]) for name, f in fig.items()]
    print_table(f"{NAME}: {requests} sequential requests, {seconds:g}s at {THROUGHPUT_CONCURRENCY} connections, "
                f"median of {repeats}", rows, ("function", "p50 ms", "p95 ms", "req/s"))
    targets = [target("p50 added latency", added, "<=", 1.5, "ms"),
               target("throughput share of bare", share * 100, ">=", 50, "%")]
    print_targets(targets)
    write_results(NAME, {
        "parameters": {"sequential_requests": requests, "throughput_seconds": seconds,
                       "throughput_concurrency": THROUGHPUT_CONCURRENCY, "token_pool": TOKEN_POOL,
                       "repeats": repeats, "quick": args.quick, "store": "sqlite", "oidc": True},
        "figures": {**fig, "added_p50_ms": added, "throughput_share": share, "repeats": runs},
        "baseline": {"name": "bare functions-framework function", **fig["bare"]},
        "ratio": share, "targets": targets})
    return 0


if __name__ == "__main__":
    sys.exit(main())
