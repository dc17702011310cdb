"""A small OTLP/HTTP trace receiver for the dev stack (``ordertasks dev --tracing``).

It keeps the last ``--keep`` traces in memory (the oldest trace is dropped first) and serves
them to the console:

    POST /v1/traces               OTLP/HTTP export: protobuf (what the SDK's exporter sends) or
                                  JSON (hex ids), gzip or not; answers an empty export response
    GET  /api/traces              {"traces": [{trace_id, root, spans, started_ns, ...}]}, newest first
    GET  /api/traces/<trace_id>   {"trace_id", "spans": [...]} or 404
    GET  /api/orders/<order_id>   {"traces": [...]}: every trace with a span of that order
                                  (``ordertasks.order_id``), the order's own trace first, then
                                  the traces linked to it (delayed kinds)
    GET  /healthz

A span here is a plain dict: ``trace_id``, ``span_id``, ``parent_span_id`` (hex), ``name``,
``kind``, ``service``, ``start_ns``, ``end_ns``, ``attributes``, ``status`` (``code``,
``message``), ``events`` (``name``, ``attributes``), ``links`` (``trace_id``, ``span_id``).
Nothing is written to disk: a restart starts empty. Loopback only, for development.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import gzip
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                      ExportTraceServiceResponse)

from ordertasks.infra.threaded_server import ThreadedServer

Span = dict[str, Any]
KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUS = {0: "unset", 1: "ok", 2: "error"}
MAX_BODY = 16 * 1024 * 1024
HEX_ID = re.compile(r"^[0-9a-f]{16}$|^[0-9a-f]{32}$")


def hex_id(value: str | None) -> str | None:
    """An OTLP id as hex: JSON OTLP writes hex, protobuf-as-JSON writes base64."""
    if not value:
        return None
    if HEX_ID.match(value.lower()):
        return value.lower()
    try:
        return base64.b64decode(value).hex() or None
    except (binascii.Error, ValueError):
        return None


def any_value(value: dict[str, Any]) -> Any:
    """The Python value of an OTLP ``AnyValue``."""
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in value["arrayValue"].get("values", [])]
    return None


def attributes(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """OTLP ``KeyValue`` list → dict."""
    return {item["key"]: any_value(item.get("value", {})) for item in items}


def kind_name(value: Any) -> str:
    """A span kind as a word (protobuf-as-JSON gives the enum's name, OTLP JSON its number)."""
    if isinstance(value, int):
        return KINDS.get(value, "unspecified")
    return str(value or "SPAN_KIND_UNSPECIFIED").removeprefix("SPAN_KIND_").lower()


def status_code(value: Any) -> str:
    """A status code as a word."""
    if isinstance(value, int):
        return STATUS.get(value, "unset")
    return str(value or "STATUS_CODE_UNSET").removeprefix("STATUS_CODE_").lower()


def span_of(raw: dict[str, Any], service: str) -> Span:
    """One OTLP span (JSON form) as this receiver keeps it."""
    status = raw.get("status", {})
    return {
        "trace_id": hex_id(raw.get("traceId")), "span_id": hex_id(raw.get("spanId")),
        "parent_span_id": hex_id(raw.get("parentSpanId")), "name": raw.get("name", ""),
        "kind": kind_name(raw.get("kind")), "service": service,
        "start_ns": int(raw.get("startTimeUnixNano", 0)), "end_ns": int(raw.get("endTimeUnixNano", 0)),
        "attributes": attributes(raw.get("attributes", [])),
        "status": {"code": status_code(status.get("code")), "message": status.get("message", "")},
        "events": [{"name": e.get("name", ""), "attributes": attributes(e.get("attributes", []))}
                   for e in raw.get("events", [])],
        "links": [{"trace_id": hex_id(link.get("traceId")), "span_id": hex_id(link.get("spanId"))}
                  for link in raw.get("links", [])],
    }


def spans_of(export: dict[str, Any]) -> list[Span]:
    """Every span of an export request (JSON form)."""
    found: list[Span] = []
    for resource_spans in export.get("resourceSpans", []):
        resource = attributes(resource_spans.get("resource", {}).get("attributes", []))
        service = str(resource.get("service.name", ""))
        for scope_spans in resource_spans.get("scopeSpans", []):
            found += [span_of(raw, service) for raw in scope_spans.get("spans", [])]
    return [span for span in found if span["trace_id"] and span["span_id"]]


def decode(body: bytes, content_type: str) -> list[Span]:
    """An export request's spans; ``ValueError`` for a body that is neither protobuf nor JSON OTLP."""
    if content_type.startswith("application/json"):
        return spans_of(json.loads(body))
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise ValueError(f"not an OTLP protobuf export: {exc}") from exc
    return spans_of(json_format.MessageToDict(request))


class TraceStore:
    """The last ``keep`` traces, each a dict of spans by id; thread-safe."""

    def __init__(self, keep: int = 200) -> None:
        self.keep = keep
        self._traces: OrderedDict[str, dict[str, Span]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, spans: Iterable[Span]) -> None:
        """Keep ``spans``; a trace seen again moves to the newest end; the oldest beyond ``keep`` go."""
        with self._lock:
            for span in spans:
                self._traces.setdefault(span["trace_id"], {})[span["span_id"]] = span
                self._traces.move_to_end(span["trace_id"])
            while len(self._traces) > self.keep:
                self._traces.popitem(last=False)

    def trace(self, trace_id: str) -> list[Span] | None:
        """The spans of ``trace_id`` by start time, or ``None``."""
        with self._lock:
            spans = self._traces.get(trace_id)
            return sorted(spans.values(), key=lambda s: s["start_ns"]) if spans is not None else None

    def summaries(self) -> list[dict[str, Any]]:
        """Every trace kept, newest first."""
        with self._lock:
            ids = list(reversed(self._traces))
        return [summary(trace_id, self.trace(trace_id) or []) for trace_id in ids]

    def for_order(self, order_id: str) -> list[dict[str, Any]]:
        """The traces with a span of ``order_id``: those holding the earliest span first (the
        order's own trace), then the rest (each delayed kind's, linked to it), by start."""
        with self._lock:
            ids = [trace_id for trace_id, spans in self._traces.items()
                   if any(s["attributes"].get("ordertasks.order_id") == order_id for s in spans.values())]
        found = [{"trace_id": trace_id, "spans": self.trace(trace_id) or []} for trace_id in ids]
        return sorted(found, key=lambda t: min((s["start_ns"] for s in t["spans"]), default=0))


def summary(trace_id: str, spans: Sequence[Span]) -> dict[str, Any]:
    """A trace in one line: its root span, span count, start and duration."""
    root = next((s for s in spans if not s["parent_span_id"]), spans[0] if spans else None)
    start = min((s["start_ns"] for s in spans), default=0)
    end = max((s["end_ns"] for s in spans), default=0)
    return {"trace_id": trace_id, "root": root["name"] if root else "", "spans": len(spans), "started_ns": start,
            "duration_ms": round((end - start) / 1e6, 3),
            "errors": sum(1 for s in spans if s["status"]["code"] == "error")}


def _make_handler(store: TraceStore) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            return

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, value: Any) -> None:
            self._send(status, json.dumps(value).encode())

        def do_POST(self) -> None:  # noqa: N802 - stdlib naming
            if self.path.split("?", 1)[0] != "/v1/traces":
                return self._json(404, {"error": "OTLP traces go to POST /v1/traces"})
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self._json(413, {"error": f"an export is at most {MAX_BODY} bytes here"})
            body = self.rfile.read(length)
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            content_type = self.headers.get("Content-Type", "application/x-protobuf")
            try:
                store.add(decode(body, content_type))
            except ValueError as exc:
                return self._json(400, {"error": str(exc)})
            if content_type.startswith("application/json"):
                return self._json(200, {})
            self._send(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            parts = [p for p in self.path.split("?", 1)[0].split("/") if p]
            if parts == ["healthz"]:
                return self._json(200, {"status": "ok"})
            if parts == ["api", "traces"]:
                return self._json(200, {"traces": store.summaries()})
            if len(parts) == 3 and parts[:2] == ["api", "traces"]:
                spans = store.trace(parts[2].lower())
                if spans is None:
                    return self._json(404, {"error": f"no trace {parts[2][:40]!r} is kept here"})
                return self._json(200, {"trace_id": parts[2].lower(), "spans": spans})
            if len(parts) == 3 and parts[:2] == ["api", "orders"]:
                return self._json(200, {"traces": store.for_order(parts[2])})
            self._json(404, {"error": "not found"})

    return Handler


class TraceReceiver(ThreadedServer):
    """The receiver on ``host:port`` in a background thread (port 0: a free one)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4318, keep: int = 200) -> None:
        self.store = TraceStore(keep)
        super().__init__(host, port, _make_handler(self.store))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ordertasks.infra.trace_receiver --port 4318 --keep 200``: serve until killed."""
    parser = argparse.ArgumentParser(prog="trace_receiver", description="OTLP/HTTP trace receiver for development")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4318)
    parser.add_argument("--keep", type=int, default=200, help="traces kept (the oldest go first)")
    args = parser.parse_args(argv)
    receiver = TraceReceiver(args.host, args.port, args.keep)
    print(f"trace receiver on {receiver.url}/v1/traces, keeping the last {args.keep} traces", flush=True)
    try:
        receiver.server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
