"""``scale_simulation``: 50 orders/s for 60 s on the Firestore emulator; the hottest document.

    python -m benchmarks.scale_simulation [--quick] [--rate N] [--seconds S] [--shards K]

Firestore sustains about one write per second on a single document, so what matters at
scale is whether any document's write rate grows with the order rate. This benchmark places
orders open-loop at ``--rate`` per second (a pacer, no coordinated omission) and records
every write the stores send, with its document path and the time it was sent
(``benchmarks/_cloud_meter.py``, ``Meter(journal=True)``). Then it reports, per document
class, the highest number of writes any one document took in a 1 s window and the busiest
document's sustained rate over the run.

What runs: the **same store code** the checkout and the handler use, on a ``FirestoreStore``
over the Firestore emulator, driven directly rather than through HTTP (the whole local stack
reaches ~120 tasks/s on 2 cores, far from the 300 tasks/s that 50 orders/s means):

- the checkout's store calls for each order, in its order: ``reserve_checkout``,
  ``create_order``, ``mark_paid`` (with the outbox), ``mark_scheduled_many``,
  ``finish_checkout``;
- each of the catalog's tasks through the real ``Dispatcher.run`` (parse, order read, claim
  or create-once path, done mark, failed-log lookup) with the catalog's kind declarations;
  their ``perform`` is a stand-in with the same store footprint (the analytics fact and
  shard through the real ``record_order_fact``; the invoice a small create-once blob; email
  and webhook no-ops, as their far ends are not Firestore), so the CPU goes to the stores.
  Tasks are delivered as soon as their order is placed: in a steady state every kind
  arrives at the order rate whatever its delay, and no document is shared across kinds.

**The timeline.** 50 orders/s is more than this machine can run in real time: each order
costs ~70 ms of CPU in the client process alone (34 Firestore RPCs through
``google-cloud-firestore``; 3.5 cores at 50/s), and the emulator needs CPU too. So orders are
*released* on the requested schedule (order ``i`` at ``i / rate`` s, by a pacer) and run as
fast as the workers can; every write is journaled with its thread and time, attributed to
the order that thread was running, and placed on the **scheduled timeline**: the order's
scheduled start plus the write's real offset within the order. When the machine keeps up,
the two timelines are the same; when it lags, the per-document rates are those the same
writes would make at the requested rate (each order's own writes keep their real spacing,
orders keep their schedule). The real rate achieved is reported too. What the re-timing
does not show is contention a busier document would meet at the real rate (the emulator
does not throttle a hot document anyway): the figures say whether any document's rate
*would* exceed Firestore's ~1 sustained write/s, not how Firestore would behave if it did.

Counts are exact; the achieved rate and latencies depend on the shared 2-core machine.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import os
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from benchmarks._cloud_meter import Meter, meter_firestore
from benchmarks._common import REPO_ROOT, median, parser, percentile, print_table, print_targets, target, write_results
from benchmarks.cloud_cost import start_firestore

NAME = "scale_simulation"
CATALOG = REPO_ROOT / "infra" / "tasks.toml"
WORKERS = 4          # few: an order's own writes keep the spacing of one uncontended order
SHARD_CHOICES = (8, 16, 32, 64, 100, 128)


def document_class(path: str) -> str:
    """``orders/ord_1`` → ``orders/{id}``; ``analytics_daily/d/shards/3`` → ``analytics_daily/{day}/shards/{k}``."""
    parts = path.split("/")
    names = {"analytics_daily": "{day}", "shards": "{k}"}
    return "/".join(p if i % 2 == 0 else names.get(parts[i - 1], "{id}") for i, p in enumerate(parts))


Span = tuple[int, float, float, float, str]      # thread, real start, real end, scheduled start, order id


def retimed(writes: list[tuple[float, str, int]], orders: list[Span]) -> list[tuple[float, str, str]]:
    """Writes as (time on the scheduled timeline, document, order id) (see the module docstring).

    A write belongs to the order its thread was running at the time; writes outside any
    order (the warm-up) are dropped.
    """
    by_thread: dict[int, list[tuple[float, float, float, str]]] = defaultdict(list)
    for thread, start, end, scheduled, order_id in orders:
        by_thread[thread].append((start, end, scheduled, order_id))
    for spans in by_thread.values():
        spans.sort()
    placed = []
    for at, path, thread in writes:
        spans = by_thread.get(thread, [])
        i = bisect.bisect_right(spans, (at, float("inf"), 0.0, "")) - 1
        if i >= 0 and spans[i][0] <= at <= spans[i][1]:
            placed.append((spans[i][2] + at - spans[i][0], path, spans[i][3]))
    return placed


def resharded(timeline: list[tuple[float, str, str]], shards: int) -> list[tuple[float, str]]:
    """The analytics shard writes as they would land with ``shards`` shards (shard_for is a pure
    function of the order id), so one run answers for every shard count."""
    from ordertasks.handlers.kinds.record_analytics import shard_for

    return [(at, f"{path.rsplit('/', 1)[0]}/{shard_for(order_id, shards)}")
            for at, path, order_id in timeline if document_class(path).endswith("shards/{k}")]


def window_peaks(writes: list[tuple[float, str]], window: float = 1.0) -> dict[str, tuple[int, str]]:
    """Document class → (most writes one document took in any ``window`` s, that document)."""
    by_doc: dict[str, list[float]] = defaultdict(list)
    for at, path in writes:
        by_doc[path].append(at)
    peaks: dict[str, tuple[int, str]] = {}
    for path, times in by_doc.items():
        times.sort()
        most, start = 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= window:
                start += 1
            most = max(most, end - start + 1)
        cls = document_class(path)
        if most > peaks.get(cls, (0, ""))[0]:
            peaks[cls] = (most, path)
    return peaks


def sustained(writes: list[tuple[float, str]], seconds: float) -> dict[str, tuple[float, str, int]]:
    """Document class → (busiest document's writes per second over the run, it, documents written)."""
    counts = Counter(path for _, path in writes)
    out: dict[str, tuple[float, str, int]] = {}
    docs: Counter[str] = Counter(document_class(p) for p in counts)
    for path, n in counts.items():
        cls = document_class(path)
        if n / seconds > out.get(cls, (0.0, "", 0))[0]:
            out[cls] = (n / seconds, path, docs[cls])
    return out


# --- the simulated stack -------------------------------------------------------------------


class NullMailer:
    """The email kinds' far end is SMTP, not Firestore: sending costs nothing here."""

    def send(self, message: Any) -> None:
        """Drop the message."""


def stand_in_kinds(catalog: Any) -> Any:
    """The catalog's declarations with stand-in ``perform``s of the same store footprint."""
    from ordertasks.handlers.kinds.record_analytics import record_analytics
    from ordertasks.handlers.registry import KindRegistry

    def small_blob(task: Any, ctx: Any) -> dict[str, Any]:
        written = ctx.blobs.put_once(f"invoices/{task.order_id}.pdf", b"%PDF-1.4 stand-in", "application/pdf")
        return {"path": f"invoices/{task.order_id}.pdf", "written": written, "created": written}

    def nothing(task: Any, ctx: Any) -> dict[str, Any]:
        return {}
    kinds = KindRegistry.from_catalog(catalog)
    performs = {name: record_analytics if k.perform is record_analytics else small_blob if k.create_once else nothing
                for name, k in kinds.items()}
    return KindRegistry({name: replace(k, perform=performs[name]) for name, k in kinds.items()}, kinds.webhooks)


def build(tmp: Path, shards: int | None) -> tuple[Any, Any, Meter, Any]:
    """A metered ``FirestoreStore`` in a fresh emulator project, the dispatcher over it, the catalog."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    from ordertasks.handlers.backends.firestore import FirestoreStore
    from ordertasks.handlers.backends.localdir import LocalDirBlobStore
    from ordertasks.handlers.dispatch import Dispatcher
    from ordertasks.handlers.kind import EffectContext, Seller, SystemClock
    from ordertasks.infra.config import load_catalog

    meter = Meter(journal=True)
    client = firestore.Client(project=f"bench-scale-{uuid.uuid4().hex[:10]}", credentials=AnonymousCredentials())
    store = FirestoreStore(meter_firestore(client, meter), timeout=60.0)
    catalog = load_catalog(CATALOG)
    if shards:
        catalog = replace(catalog, analytics_shards=shards)
    ctx = EffectContext(mailer=NullMailer(), blobs=LocalDirBlobStore(tmp / "blobs"), analytics=store.analytics,
                        clock=SystemClock(), seller=Seller("Shop", "1 Street", "T-1", "shop@example.com"),
                        analytics_shards=catalog.analytics_shards)
    kinds = stand_in_kinds(catalog)
    dispatcher = Dispatcher(kinds, ctx, store.effects, store.failed, store.orders, catalog, SystemClock())
    return store, dispatcher, meter, catalog


def one_order(store: Any, dispatcher: Any, catalog: Any, snapshot: dict[str, Any],
              task_seconds: list[float] | None = None) -> str:
    """The checkout's store calls for one order, then each task through the dispatcher; its id.

    ``task_seconds`` gets the wall time of each ``Dispatcher.run``.
    """
    from ordertasks.handlers.contract import encode
    from ordertasks.handlers.dispatch import Delivery, Outcome
    from ordertasks.handlers.ports import OrderRecord, OutboxEntry

    order_id, key, now = "ord_" + uuid.uuid4().hex[:20], f"k-{uuid.uuid4()}", datetime.now(timezone.utc)
    store.orders.reserve_checkout(key, "h", order_id, now)
    store.orders.create_order(OrderRecord(order_id, "created", snapshot, now))
    outbox = [OutboxEntry(order_id, kind, f"{order_id}-{kind}", now + timedelta(seconds=c.delay_seconds), "pending", now)
              for kind, c in catalog.kinds.items()]
    store.orders.mark_paid(order_id, "ch_sim", outbox, now)
    store.orders.mark_scheduled_many(order_id, list(catalog.kinds), now)
    store.orders.finish_checkout(key, 201, {"order_id": order_id})
    for kind in catalog.kinds:
        t0 = time.perf_counter()
        result = dispatcher.run(Delivery(encode(kind, order_id), task_name=f"{order_id}-{kind}",
                                         queue_name=catalog.kinds[kind].queue))
        if result.outcome is not Outcome.DONE:
            raise RuntimeError(f"{kind} of {order_id}: {result.outcome.value} {result.message}")
        if task_seconds is not None:
            task_seconds.append(time.perf_counter() - t0)
    return order_id


def run(rate: float, seconds: float, shards: int | None, tmp: Path) -> dict[str, Any]:
    """Place ``rate`` orders/s for ``seconds`` (open loop); the journal's figures."""
    from tests.effects.orders import eur_order

    store, dispatcher, meter, catalog = build(tmp, shards)
    snapshot = eur_order().model_dump(mode="json")
    one_order(store, dispatcher, catalog, snapshot)          # warm the client's channel
    meter.writes.clear()
    total = int(rate * seconds)
    spans: list[Span] = []
    task_seconds: list[float] = []
    lock, late = threading.Lock(), [0.0]
    started = time.monotonic()

    def placed(index: int) -> None:
        scheduled = started + index / rate
        begin = time.monotonic()
        order_id = one_order(store, dispatcher, catalog, snapshot, task_seconds)
        with lock:
            spans.append((threading.get_ident(), begin, time.monotonic(), scheduled, order_id))
            late[0] = max(late[0], begin - scheduled)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = []
        for index in range(total):
            time.sleep(max(0.0, started + index / rate - time.monotonic()))
            futures.append(pool.submit(placed, index))
        for future in futures:
            future.result()
    elapsed = time.monotonic() - started
    timeline = retimed(meter.writes, spans)
    docs = [(at, path) for at, path, _ in timeline]
    span = max(at for at, _ in docs) - min(at for at, _ in docs)
    took = [end - begin for _, begin, end, _, _ in spans]
    return {"orders": total, "elapsed_s": elapsed, "achieved_orders_per_s": total / elapsed,
            "timeline_s": span, "order_seconds_p50": median(took), "order_seconds_p99": percentile(took, 99),
            "task_ms_p50": median(task_seconds) * 1000, "task_ms_p99": percentile(task_seconds, 99) * 1000,
            "max_start_lag_s": late[0], "writes": len(timeline), "writes_per_order": len(timeline) / total,
            "writes_per_s": len(timeline) / max(span, 1e-9), "shards": catalog.analytics_shards,
            "peaks": {cls: {"writes_in_1s": n, "document": doc} for cls, (n, doc) in window_peaks(docs).items()},
            "sustained": {cls: {"writes_per_s": r, "document": doc, "documents": d}
                          for cls, (r, doc, d) in sustained(docs, max(span, 1e-9)).items()},
            "by_shard_count": shard_table(timeline, max(span, 1e-9),
                                          (catalog.analytics_shards, recommended_shards(rate)))}


def shard_table(timeline: list[tuple[float, str, str]], span: float,
                extra: tuple[int, ...] = ()) -> dict[str, dict[str, float]]:
    """For each shard count: the busiest shard's sustained writes/s and its most writes in 1 s."""
    table = {}
    for shards in sorted({*SHARD_CHOICES, *extra}):
        writes = resharded(timeline, shards)
        peak = max((n for n, _ in window_peaks(writes).values()), default=0)
        busiest = max((r for r, _, _ in sustained(writes, span).values()), default=0.0)
        table[str(shards)] = {"busiest_writes_per_s": busiest, "most_writes_in_1s": peak}
    return table


def recommended_shards(rate: float) -> int:
    """The capacity rule of benchmarks/README.md: ``[analytics] shards`` = twice the peak orders/s."""
    return max(8, int(2 * rate))


def scale_targets(fig: dict[str, Any], rate: float) -> list[dict[str, Any]]:
    """No document above 1 write/s sustained, with the recommended and with the catalog's shard
    count; and the strict reading, the most writes on one document in any 1 s window."""
    others = {cls: row for cls, row in fig["sustained"].items() if not cls.endswith("shards/{k}")}
    other_peak = max((row["writes_per_s"] for row in others.values()), default=0.0)
    rec, cat = fig["by_shard_count"][str(recommended_shards(rate))], fig["by_shard_count"][str(fig["shards"])]
    bursts = [(cls, p["writes_in_1s"]) for cls, p in fig["peaks"].items() if not cls.endswith("shards/{k}")]
    burst_cls, burst = max([*bursts, ("analytics_daily/{day}/shards/{k}", rec["most_writes_in_1s"])],
                           key=lambda item: item[1])
    return [
        target(f"busiest document, sustained writes/s at {rate:g} orders/s, [analytics] shards = "
               f"{recommended_shards(rate)} (2 x orders/s)", max(other_peak, rec["busiest_writes_per_s"]), "<=", 1.0,
               "writes/s", f"{fig['writes_per_s']:.0f} writes/s over all documents"),
        target(f"busiest document, sustained writes/s at {rate:g} orders/s, the catalog's {fig['shards']} shards",
               max(other_peak, cat["busiest_writes_per_s"]), "<=", 1.0, "writes/s",
               f"{rate / fig['shards']:.2f} writes/s per shard on average"),
        target(f"most writes on one document in any 1 s window ({burst_cls}; shards: {recommended_shards(rate)})",
               float(burst), "<=", 1.0, "writes",
               f"per-order documents: {max((n for _, n in bursts), default=0)} (an order's own writes)"),
    ]


def report(args: Any, fig: dict[str, Any]) -> int:
    """Tables, targets, the results file."""
    print(f"{fig['orders']} orders released at {args.rate:g}/s ran in {fig['elapsed_s']:.1f} s of real time "
          f"({fig['achieved_orders_per_s']:.1f}/s achieved; one order p50 {fig['order_seconds_p50'] * 1000:.0f} ms, "
          f"p99 {fig['order_seconds_p99'] * 1000:.0f} ms; one task {fig['task_ms_p50']:.1f} ms p50, "
          f"{fig['task_ms_p99']:.1f} ms p99)")
    print_table(f"on the scheduled timeline: {fig['timeline_s']:.1f} s, {fig['writes_per_s']:.0f} Firestore writes/s, "
                f"{fig['writes_per_order']:g} per order, {fig['shards']} analytics shards",
                [(cls, p["writes_in_1s"], p["document"], f"{fig['sustained'][cls]['writes_per_s']:.3f}",
                  fig["sustained"][cls]["documents"]) for cls, p in sorted(fig["peaks"].items())],
                ("document class", "max writes in 1 s (one doc)", "that document", "busiest doc, writes/s over run",
                 "documents"))
    print_table("analytics shards needed: the same shard writes under other shard counts ([analytics] shards)",
                [(n, f"{row['busiest_writes_per_s']:.2f}", row["most_writes_in_1s"]) for n, row in fig["by_shard_count"].items()],
                ("shards", "busiest shard, writes/s sustained", "most writes on one shard in 1 s"))
    targets = scale_targets(fig, args.rate)
    print_targets(targets)
    write_results(NAME, {"parameters": {"quick": args.quick, "rate": args.rate, "seconds": args.seconds,
                                        "shards": fig["shards"], "workers": WORKERS},
                         "figures": fig, "baseline": {"name": "none: absolute limits (Firestore ~1 write/s/document)"},
                         "targets": targets})
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the simulation once and report it."""
    p = parser(NAME, __doc__)
    p.add_argument("--rate", type=float, default=50.0, help="orders per second (default 50)")
    p.add_argument("--seconds", type=float, default=None, help="how long to place orders (default 60; 10 quick)")
    p.add_argument("--shards", type=int, default=None, help="analytics shards (default: the catalog's)")
    args = p.parse_args(argv)
    args.seconds = args.seconds or (10.0 if args.quick else 60.0)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as name:
        tmp = Path(name)
        proc, host = start_firestore(tmp)
        os.environ["FIRESTORE_EMULATOR_HOST"] = host      # read by google-cloud-firestore itself
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                fig = run(args.rate, args.seconds, args.shards, tmp)
        finally:
            proc.stop()
    return report(args, fig)


if __name__ == "__main__":
    sys.exit(main())
