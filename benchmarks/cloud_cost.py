"""``cloud_cost``: what one order costs in the cloud, counted on the Firestore emulator.

    python -m benchmarks.cloud_cost [--quick] [--orders N]

N orders go through the real checkout (``producer.checkout.create_app``, with an
``Idempotency-Key`` as a shop's client sends it) and every task it creates goes once
through the real handler (``functions.main.build_handler``, OIDC on), both on a
``FirestoreStore`` over the **Firestore emulator** (``gcloud emulators firestore``) and
the producer's Cloud Tasks client on the local Cloud Tasks emulator (queues paused: the
benchmark delivers each created task itself, with the headers Cloud Tasks sends). Then a
sample of the tasks is delivered a second time (Cloud Tasks delivers at least once) to
price a duplicate delivery.

Counted at the clients handed to our code (``benchmarks/_cloud_meter.py``; nothing of
ours is patched): Firestore document reads (found / missing), writes and deletes per
collection, Firestore RPCs, Cloud Tasks API calls, handler invocations, and CPU-ms in the
calling thread for the checkout and for each handler invocation (in-process, so without
HTTP server overhead: a lower bound). Priced with the list prices in
``benchmarks/_cloud_prices.py`` (the same table, with sources and date, is in
benchmarks/README.md) -> cost per million orders, by part.

Modes (all run in the same process, on the same emulators, one after the other):

- ``today``: the protocol and storage layout before issue 19 (the baseline): one
  ``outbox/`` document per task (``FirestoreStore(outbox_layout="documents")``), a claim and
  a done mark for every kind (``KindRegistry.with_claims()``), and ``OrderTasks.schedule``
  storing the order a second time (``StoresTheOrderAgain``: a refused ``create()`` and a read).
- ``outbox_in_order``: the first step: the outbox in its order's document, its six
  ``scheduled`` marks one write (``mark_scheduled_many``); claims and the second store as today.
- ``create_once``: the current default: also the create-once kinds (invoice, analytics fact)
  without claim or done mark on a first delivery (their far-end record is the done mark), and
  the checkout handing its stored order to ``OrderTasks.schedule``.

Target: Firestore writes per order halved against ``today``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks._cloud_meter import Meter, MeteredTasksClient, meter_firestore
from benchmarks._cloud_prices import PRICES, cost_per_million
from benchmarks._common import (REPO_ROOT, Proc, free_port, median, parser, print_table, print_targets, rest_client,
                                start_emulator, target, write_results)

NAME = "cloud_cost"
CATALOG = REPO_ROOT / "infra" / "tasks.toml"
MODES = ("today", "outbox_in_order", "create_once")
OUTBOX_LAYOUT = {"today": "documents", "outbox_in_order": "order", "create_once": "order"}
BEFORE_CREATE_ONCE = ("today", "outbox_in_order")     # claims everywhere, the order stored twice
DUPLICATE_SAMPLE = 0.1          # share of tasks delivered a second time


@dataclass
class Phase:
    """What one phase (checkout, handler, duplicates) billed."""

    firestore: Counter[tuple[str, str]] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    cpu_s: float = 0.0
    invocations: int = 0

    def count(self, operation: str) -> int:
        """All ``operation``s (read, read_missing, write, delete) over every collection."""
        return sum(n for (op, _), n in self.firestore.items() if op == operation)

    def tasks_calls(self) -> int:
        """Cloud Tasks API calls."""
        return sum(n for name, n in self.calls.items() if name.startswith("tasks."))


def measured(meter: Meter, run: Any) -> tuple[Phase, Any]:
    """Run ``run()``; return what it billed (counter differences, thread CPU) and its result."""
    firestore0, calls0 = meter.snapshot()
    cpu0 = time.thread_time()
    result = run()
    cpu = time.thread_time() - cpu0
    firestore1, calls1 = meter.snapshot()
    return Phase(firestore1 - firestore0, calls1 - calls0, cpu), result


# --- the stack ----------------------------------------------------------------------------


def start_firestore(tmp: Path) -> tuple[Proc, str]:
    """``gcloud emulators firestore start`` on a free port (as tests/conftest.py starts it)."""
    gcloud = shutil.which("gcloud")
    if gcloud is None or shutil.which("java") is None:
        raise SystemExit("cloud_cost needs the gcloud SDK and Java (the Firestore emulator runs on them)")
    port = free_port()
    argv = [gcloud, "emulators", "firestore", "start", f"--host-port=127.0.0.1:{port}"]
    proc = Proc(argv, tmp / "firestore.log").start(lambda: _firestore_answers(port), timeout=120)
    return proc, f"127.0.0.1:{port}"


def _firestore_answers(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=0.5) as resp:
            return resp.status == 200
    except OSError:
        return False


def pause_queues(host: str) -> None:
    """Nothing is dispatched by the emulator: the benchmark delivers each task itself."""
    from ordertasks.infra.config import load_catalog

    client, catalog = rest_client(host), load_catalog(CATALOG)
    for queue in catalog.queues:
        client.pause_queue(name=f"projects/{catalog.project}/locations/{catalog.region}/queues/{queue}")


@dataclass
class Stack:
    """The far ends shared by every run: emulators, SMTP sink, warehouse stand-in, issuer."""

    tmp: Path
    tasks_host: str
    mail: Any
    warehouse: Any
    issuer: Any
    handler_url: str = "http://127.0.0.1:9/handler"

    def settings(self, mode: str) -> Any:
        """Settings of one run (its own data directory for invoices)."""
        from ordertasks.handlers.settings import OidcSettings, Settings, SmtpSettings, StoreSettings, TasksSettings

        return Settings(store=StoreSettings(data_dir=self.tmp / f"data-{uuid.uuid4().hex[:8]}"),
                        tasks=TasksSettings(handler_url=self.handler_url, emulator_host=self.tasks_host),
                        oidc=OidcSettings(certs_url=self.issuer.certs_url),
                        smtp=SmtpSettings(port=self.mail.controller.port),
                        catalog_path=CATALOG, log_level="WARNING",
                        environment={"ORDERTASKS_WAREHOUSE_URL": self.warehouse.url + "/notifications",
                                     "ORDERTASKS_WAREHOUSE_TIMEOUT": "5"})


def firestore_store(meter: Meter, mode: str) -> Any:
    """A ``FirestoreStore`` for ``mode`` in a fresh emulator project, its client metered."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    from ordertasks.handlers.backends.firestore import FirestoreStore

    client = firestore.Client(project=f"bench-cost-{uuid.uuid4().hex[:10]}", credentials=AnonymousCredentials())
    return FirestoreStore(meter_firestore(client, meter), timeout=30.0, outbox_layout=OUTBOX_LAYOUT[mode])


def stores_the_order_again() -> type:
    """``OrderTasks`` whose ``schedule`` ignores the record the checkout hands over, as before 0.3."""
    from ordertasks.producer.library import OrderTasks

    class StoresTheOrderAgain(OrderTasks):
        def schedule(self, order: Any, *, payment_id: str | None = None, stored: Any = None) -> Any:
            """Store the order again (refused ``create()``, then a read), then schedule."""
            return super().schedule(order, payment_id=payment_id)
    return StoresTheOrderAgain


def checkout_client(settings: Any, store: Any, tasks: Any, mode: str) -> Any:
    """The checkout app's test client on ``store`` (local payments, the demo price book)."""
    from ordertasks.producer.checkout import create_app
    from ordertasks.producer.enqueue import Enqueuer
    from ordertasks.producer.ledger import MemoryLedger
    from ordertasks.producer.payments import LocalGateway
    from ordertasks.producer.pricebook import MemoryPriceBook
    from ordertasks.producer.products import DEMO_CATALOGUE, read_products

    ledger = MemoryLedger()
    book = MemoryPriceBook(read_products(DEMO_CATALOGUE.read_text(), str(DEMO_CATALOGUE)))
    app = create_app(settings, store=store, enqueuer=Enqueuer(tasks, settings), gateway=LocalGateway(ledger=ledger),
                     price_book=book, ledger=ledger)
    if mode in BEFORE_CREATE_ONCE:
        checkout = app.extensions["ordertasks"]["checkout"]
        old = checkout.tasks
        checkout.tasks = stores_the_order_again()(old.settings, old.stores, old.enqueuer, old.clock)
    return app.test_client()


def handler_client(settings: Any, store: Any, mode: str) -> Any:
    """The handler (``build_handler``) behind a Flask test client."""
    import flask

    from ordertasks.functions.main import build_handler
    from ordertasks.handlers.registry import KindRegistry
    from ordertasks.handlers.wiring import Stores

    kinds = KindRegistry.from_catalog(settings.catalog())
    handler = build_handler(settings, stores=Stores.over(store),
                            kinds=kinds.with_claims() if mode in BEFORE_CREATE_ONCE else kinds)
    app = flask.Flask("cloud-cost-handler")
    app.add_url_rule("/handler", "handle", lambda: handler(flask.request), methods=["POST"])
    return app.test_client()


# --- one run ------------------------------------------------------------------------------


def place_orders(client: Any, orders: int) -> None:
    """``orders`` checkouts, each with its own Idempotency-Key; each must be 201."""
    from tests.support.samples import EUR_CHECKOUT_BODY

    for index in range(orders):
        resp = client.post("/api/checkout", json=EUR_CHECKOUT_BODY, headers={"Idempotency-Key": f"k-{uuid.uuid4()}"})
        if resp.status_code != 201:
            raise RuntimeError(f"checkout {index} answered {resp.status_code}: {resp.get_data(as_text=True)[:300]}")


def deliver(client: Any, issuer: Any, tasks: list[Any], expect: str) -> int:
    """POST each task as Cloud Tasks would; every answer must be 200 with outcome ``expect``."""
    for task in tasks:
        parts = task.name.split("/")
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {issuer.token()}",
                   "X-CloudTasks-TaskName": parts[-1], "X-CloudTasks-QueueName": parts[5],
                   "X-CloudTasks-TaskRetryCount": "0", "X-CloudTasks-TaskExecutionCount": "0",
                   "X-CloudTasks-TaskETA": f"{time.time():.6f}"}
        resp = client.post("/handler", data=task.http_request.body, headers=headers)
        outcome = (resp.get_json(silent=True) or {}).get("outcome")
        if resp.status_code != 200 or outcome != expect:
            raise RuntimeError(f"{parts[-1]} answered {resp.status_code} {outcome!r}, expected {expect!r}: "
                               f"{resp.get_data(as_text=True)[:300]}")
    return len(tasks)


def run_mode(stack: Stack, mode: str, orders: int) -> dict[str, Phase]:
    """One mode: checkout phase, first deliveries, a sample of duplicate deliveries."""
    meter = Meter()
    settings = stack.settings(mode)
    store = firestore_store(meter, mode)
    from ordertasks.producer.wiring import tasks_client

    tasks = MeteredTasksClient(tasks_client(settings), meter)
    checkout, handler = checkout_client(settings, store, tasks, mode), handler_client(settings, store, mode)
    with contextlib.redirect_stdout(io.StringIO()):      # the handler's JSON log lines
        producer, _ = measured(meter, lambda: place_orders(checkout, orders))
        created = tasks.take_created()
        first, _ = measured(meter, lambda: deliver(handler, stack.issuer, created, "done"))
        sample = created[::max(1, round(1 / DUPLICATE_SAMPLE))]
        again, _ = measured(meter, lambda: deliver(handler, stack.issuer, sample, "duplicate"))
    first.invocations, again.invocations = len(created), len(sample)
    return {"checkout": producer, "handler": first, "duplicate": again}


# --- figures ------------------------------------------------------------------------------


def per_order(phases: dict[str, Phase], orders: int) -> dict[str, Any]:
    """Per-order figures of one run (duplicates per redelivery)."""
    out: dict[str, Any] = {}
    for part in ("checkout", "handler"):
        phase = phases[part]
        out[part] = {op: phase.count(op) / orders for op in ("read", "read_missing", "write", "delete")}
        out[part] |= {"tasks_calls": phase.tasks_calls() / orders, "invocations": phase.invocations / orders,
                      "cpu_ms": phase.cpu_s * 1000 / orders,
                      "by_collection": {f"{op} {coll}": n / orders for (op, coll), n in sorted(phase.firestore.items())}}
    dup = phases["duplicate"]
    n = max(dup.invocations, 1)
    out["duplicate_delivery"] = {op: dup.count(op) / n for op in ("read", "read_missing", "write", "delete")}
    out["duplicate_delivery"]["cpu_ms"] = dup.cpu_s * 1000 / n
    out["tasks_per_order"] = phases["handler"].invocations / orders
    return out


def totals(fig: dict[str, Any]) -> dict[str, float]:
    """Whole-order totals: Firestore reads (missing included), writes, deletes."""
    parts = (fig["checkout"], fig["handler"])
    return {"reads": sum(p["read"] + p["read_missing"] for p in parts), "writes": sum(p["write"] for p in parts),
            "deletes": sum(p["delete"] for p in parts)}


def median_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each numeric leaf over the repeats (counts are the same in every repeat; CPU is not)."""
    first = runs[0]
    if isinstance(first, dict):
        return {k: median_figures([r.get(k, 0.0) for r in runs]) for k in first}
    return median(runs)


def print_run(mode: str, fig: dict[str, Any]) -> None:
    """The per-order table of one mode."""
    rows = []
    for part in ("checkout", "handler"):
        p = fig[part]
        rows.append((part, p["read"] + p["read_missing"], p["read_missing"], p["write"], p["delete"],
                     p["tasks_calls"], p["invocations"], p["cpu_ms"]))
    d = fig["duplicate_delivery"]
    rows.append(("a duplicate delivery", d["read"] + d["read_missing"], d["read_missing"], d["write"], d["delete"],
                 0.0, 1.0, d["cpu_ms"]))
    print_table(f"{mode}: per order ({fig['tasks_per_order']:g} tasks)", rows,
                ("part", "fs reads", "of them missing", "fs writes", "fs deletes", "tasks API calls",
                 "deliveries", "cpu ms"))
    coll = Counter()
    for part in ("checkout", "handler"):
        for key, n in fig[part]["by_collection"].items():
            coll[f"{part}: {key}"] += n
    print_table(f"{mode}: Firestore operations per order by collection", sorted(coll.items()), ("operation", "count"))


def main(argv: list[str] | None = None) -> int:
    """Measure every mode, print, write ``results/cloud_cost.json``."""
    p = parser(NAME, __doc__)
    p.add_argument("--orders", type=int, default=None, help="orders per run (default 20 quick, 100 full)")
    args = p.parse_args(argv)
    orders = args.orders or (20 if args.quick else 100)
    repeats = args.repeats or (1 if args.quick else 3)
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="bench-cost-") as name:
        with running_stack(Path(name)) as stack:
            for r in range(repeats):
                for mode in MODES:
                    runs[mode].append(per_order(run_mode(stack, mode, orders), orders))
                    print(f"  repeat {r + 1} {mode}: {totals(runs[mode][-1])}", flush=True)
    return report(args, orders, repeats, {mode: median_figures(rs) for mode, rs in runs.items()})


@contextlib.contextmanager
def running_stack(tmp: Path) -> Any:
    """Firestore emulator, Cloud Tasks emulator (queues paused), SMTP sink, warehouse, issuer."""
    from ordertasks.infra.mailsink import MailSink
    from ordertasks.infra.warehouse_standin import WarehouseStandIn
    from ordertasks.infra.config import load_catalog
    from tests.support.issuer import TestIssuer

    firestore_proc, firestore_host = start_firestore(tmp)
    tasks_proc, tasks_host = start_emulator(tmp, "--queues", str(CATALOG))
    os.environ["FIRESTORE_EMULATOR_HOST"] = firestore_host      # read by google-cloud-firestore itself
    mail = MailSink(port=free_port()).start()
    warehouse = WarehouseStandIn(port=free_port()).start()
    stack = Stack(tmp, tasks_host, mail, warehouse, None)        # type: ignore[arg-type]
    stack.issuer = TestIssuer(audience=stack.handler_url, email=load_catalog(CATALOG).service_account_email("dispatcher"))
    try:
        pause_queues(tasks_host)
        yield stack
    finally:
        stack.issuer.stop()
        warehouse.stop()
        mail.stop()
        tasks_proc.stop()
        firestore_proc.stop()


def report(args: Any, orders: int, repeats: int, figures: dict[str, dict[str, Any]]) -> int:
    """Tables, costs, targets; the results file."""
    costs = {}
    for mode, fig in figures.items():
        print_run(mode, fig)
        costs[mode] = cost_per_million(fig)
        print_table(f"{mode}: cost per million orders (USD, list prices)",
                    [(part, f"{usd:.2f}") for part, usd in costs[mode].items()], ("part", "USD"))
    base = totals(figures["today"])
    best = min(MODES, key=lambda m: totals(figures[m])["writes"])
    now = totals(figures[best])
    ratio = now["writes"] / base["writes"] if base["writes"] else float("nan")
    baseline = f"today: {base['writes']:g} writes/order"
    targets = [target(f"Firestore writes per order, {best} vs today", ratio, "<=", 0.5, "x", baseline),
               target(f"Firestore writes per order, {best}", now["writes"], "<=", base["writes"] / 2, "writes",
                      baseline)]
    print_targets(targets)
    write_results(NAME, {
        "parameters": {"quick": args.quick, "orders": orders, "repeats": repeats, "modes": list(MODES),
                       "duplicate_sample": DUPLICATE_SAMPLE, "prices": {k: str(v) for k, v in PRICES.items()}},
        "figures": {mode: {"per_order": fig, "totals": totals(fig),
                           "cost_per_million_orders_usd": {k: str(v) for k, v in costs[mode].items()}}
                    for mode, fig in figures.items()},
        "baseline": {"name": "today", "totals": base},
        "ratio": ratio, "targets": targets})
    return 0


if __name__ == "__main__":
    sys.exit(main())
