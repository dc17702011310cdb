"""``tracing_overhead``: what the tracing hook costs the handler, off and on (issue 34).

    python -m benchmarks.tracing_overhead [--quick] [--repeats N]

One process, one thread, the real ``TaskHandler`` built by ``functions.main.build_handler``
(OIDC off, SQLite store, ``record_analytics`` replaced by a no-op); each request a distinct
order id, so every one is a real claim + complete. Three variants are driven in the same
run, alternated slice by slice so the shared machine's load hits all three alike:

- ``no hook``: the handler's path before issue 34 (read the delivery, ``dispatcher.run``,
  one log line, the answer), with the same dispatcher: the baseline;
- ``off``: ``TaskHandler.__call__`` with ``NO_TRACING`` (the default);
- ``on``: ``TaskHandler.__call__`` with OpenTelemetry (SDK provider, batch processor, an
  exporter that drops the spans): 7 spans per delivery.

Figures: deliveries per second per variant (median over slices) and each slice's ratio to
the baseline of the same slice (median). Target: ``off`` within noise of ``no hook``
(ratio ≥ 0.97).
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import flask

from benchmarks._common import median, parser, print_table, write_results

NAME = "tracing_overhead"
SLICE_SECONDS = 1.0


def build(tmp: Path, tracing: Any) -> tuple[Any, Callable[[str], bytes]]:
    """A handler over its own store in ``tmp`` and a function making the body of order ``n``."""
    from ordertasks.functions.main import build_handler
    from ordertasks.handlers.backends.sqlite import SqliteStore
    from ordertasks.handlers.contract import encode
    from ordertasks.handlers.settings import OidcSettings, Settings, StoreSettings
    from tests.effects.orders import eur_order
    from tests.support.orders import store_paid_order

    settings = Settings(store=StoreSettings(data_dir=tmp), oidc=OidcSettings(verify=False))
    store = SqliteStore(settings.store.sqlite_file)
    snapshot = eur_order()

    def body(order_id: str) -> bytes:
        store_paid_order(store, order_id, snapshot)
        return encode("record_analytics", order_id)
    handler = build_handler(settings, stores=store, tracing=tracing, effects={"record_analytics": lambda t, c: {}})
    return handler, body


def without_hook(handler: Any) -> Callable[[flask.Request], Any]:
    """The pre-issue-34 path over the same dispatcher."""
    from ordertasks.functions.main import read_delivery, respond
    from ordertasks.functions.request_body import take_body
    from ordertasks.functions.main import MAX_BODY, TRACE_KEY

    def call(request: flask.Request) -> Any:
        started = time.perf_counter()
        delivery = read_delivery(request, take_body(request, MAX_BODY))
        result = handler.dispatcher.run(delivery)
        handler._log_result(delivery, result, {TRACE_KEY: None}, time.perf_counter() - started)
        return respond(result)
    return call


def otel_tracing() -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from ordertasks.handlers.otel import OtelTracing

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    return OtelTracing(provider.get_tracer("bench"))


def run_slice(call: Callable[[flask.Request], Any], body: Callable[[str], bytes], prefix: str, seconds: float) -> float:
    """Deliveries per second for ``seconds`` (the order rows are written outside the clock)."""
    app, done, spent = flask.Flask("bench"), 0, 0.0
    sink = io.StringIO()
    while spent < seconds:
        data = body(f"{prefix}-{done}")
        with app.test_request_context("/", method="POST", data=data,
                                      headers={"X-CloudTasks-TaskName": f"t-{prefix}-{done}"}), redirect_stdout(sink):
            t0 = time.perf_counter()
            call(flask.request)
            spent += time.perf_counter() - t0
        done += 1
        sink.seek(0)
        sink.truncate()
    return done / spent


def main(argv: list[str] | None = None) -> int:
    args = parser(NAME, __doc__).parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    seconds = 0.5 if args.quick else SLICE_SECONDS
    from ordertasks.handlers.tracing import NO_TRACING

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "off").mkdir(), (root / "on").mkdir()
        off, off_body = build(root / "off", NO_TRACING)
        on, on_body = build(root / "on", otel_tracing())
        variants = {"no hook": (without_hook(off), off_body), "off": (off, off_body), "on": (on, on_body)}
        rates: dict[str, list[float]] = {name: [] for name in variants}
        ratios: dict[str, list[float]] = {"off": [], "on": []}
        for r in range(repeats * 5):
            for name, (call, body) in variants.items():
                rates[name].append(run_slice(call, body, f"{name.replace(' ', '')}{r}", seconds))
            for name in ratios:
                ratios[name].append(rates[name][-1] / rates["no hook"][-1])
    rows = [[name, round(median(v), 1), round(median(ratios[name]), 3) if name in ratios else 1.0,
             f"{min(ratios[name]):.3f}-{max(ratios[name]):.3f}" if name in ratios else "-"] for name, v in rates.items()]
    print_table("handler deliveries/s in one thread (medians over interleaved slices; shared, noisy machine)",
                rows, ["variant", "req/s", "ratio to no hook", "ratio range"])
    write_results(NAME, {"slices": len(rates["off"]), "slice_seconds": seconds,
                         "rates": {k: median(v) for k, v in rates.items()},
                         "ratio_off": median(ratios["off"]), "ratio_on": median(ratios["on"]),
                         "target": {"off_ratio_at_least": 0.97, "met": median(ratios["off"]) >= 0.97}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
