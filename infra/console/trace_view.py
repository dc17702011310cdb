"""The order's trace as a waterfall (``/orders/<id>/trace``), read from the dev stack's trace
receiver (``infra/trace_receiver.py``, ``ORDERTASKS_TRACES_URL``; ``ordertasks dev --tracing``).

One waterfall per trace of the order: the order's own (checkout, enqueues and every delivery
attempt of the kinds that run within it) first, then one per delivery of a delayed kind (a
trace of its own, linked to the order's). Each row is a span, indented under its parent,
its bar placed on the trace's own time axis; errors are marked. Drawn as SVG: the console's
Content-Security-Policy allows no inline styles.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask, abort, render_template

from ordertasks.handlers.errors import OrderTasksError

ROW_HEIGHT = 22
LABEL_WIDTH = 400           # SVG units left of the bars (the chart is 1000 wide)
BAR_START, BAR_END = 410.0, 900.0
SHOWN = {"ordertasks.attempt": "attempt ", "ordertasks.outcome": "", "ordertasks.claim": "",
         "http.response.status_code": "HTTP ", "error.type": ""}     # attribute → its label in a row
CHAR_WIDTH = 6.4            # SVG units per character of a row's label (11px system font)


class TracesUnavailable(OrderTasksError):
    """The trace receiver did not answer (not running, or not this stack's)."""


@dataclass(frozen=True)
class Row:
    """One span of a waterfall, placed."""

    name: str
    service: str
    depth: int
    y: int
    x: float
    width: float
    duration_ms: float
    error: bool
    kind: str
    detail: str             # the attributes worth a glance (the row's tooltip)
    short: str              # as much of it as fits beside the name


@dataclass(frozen=True)
class Waterfall:
    """One trace of the order, its spans in tree order."""

    trace_id: str
    title: str
    linked: bool
    duration_ms: float
    rows: tuple[Row, ...]

    @property
    def height(self) -> int:
        """The SVG's height."""
        return ROW_HEIGHT * len(self.rows) + 6


def fetch_order_traces(traces_url: str, order_id: str, timeout: float = 3.0) -> list[dict[str, Any]]:
    """The receiver's traces of ``order_id``; ``TracesUnavailable`` when it does not answer."""
    url = urllib.parse.urljoin(traces_url, f"/api/orders/{urllib.parse.quote(order_id, safe='')}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            found: list[dict[str, Any]] = json.load(answer)["traces"]
            return found
    except (OSError, ValueError, KeyError) as exc:
        raise TracesUnavailable(f"the trace receiver at {traces_url} did not answer ({exc})") from exc


def tree_order(spans: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """``(span, depth)`` parents before children, siblings by start; orphans (a parent not
    received) as roots."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span["parent_span_id"] if span["parent_span_id"] in ids else None
        children.setdefault(parent, []).append(span)
    ordered: list[tuple[dict[str, Any], int]] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s["start_ns"]):
            ordered.append((span, depth))
            walk(span["span_id"], depth + 1)
    walk(None, 0)
    return ordered


def detail(span: dict[str, Any]) -> str:
    """The attributes worth a glance, and the error message."""
    parts = [f"{label}{span['attributes'][k]}" for k, label in SHOWN.items() if k in span["attributes"]]
    if span["status"]["code"] == "error" and span["status"]["message"]:
        parts.append(span["status"]["message"][:120])
    return " · ".join(parts)


def fitted(name: str, depth: int, text: str) -> str:
    """``text`` cut to what fits beside ``name`` left of the bars (the whole of it is the row's tooltip)."""
    room = int((LABEL_WIDTH - 12 - depth * 14) / CHAR_WIDTH) - len(name) - 1
    return text if len(text) <= room else (text[:max(room - 1, 0)] + "…" if room > 4 else "")


def waterfall(trace: dict[str, Any], order_trace_id: str | None) -> Waterfall:
    """One trace placed on its own time axis."""
    spans = trace["spans"]
    start = min(s["start_ns"] for s in spans)
    total = max(max(s["end_ns"] for s in spans) - start, 1)
    scale = (BAR_END - BAR_START) / total
    rows = tuple(Row(s["name"], s["service"], depth, i * ROW_HEIGHT + 3, BAR_START + (s["start_ns"] - start) * scale,
                     max(1.5, (s["end_ns"] - s["start_ns"]) * scale), round((s["end_ns"] - s["start_ns"]) / 1e6, 2),
                     s["status"]["code"] == "error", s["kind"], detail(s), fitted(s["name"], depth, detail(s)))
                 for i, (s, depth) in enumerate(tree_order(spans)))
    linked = order_trace_id is not None and trace["trace_id"] != order_trace_id
    title = (f"{rows[0].name}: a trace of its own, linked to the order's" if linked else rows[0].name) if rows else ""
    return Waterfall(trace["trace_id"], title, linked, round(total / 1e6, 2), rows)


def waterfalls(traces: Sequence[dict[str, Any]]) -> list[Waterfall]:
    """Every trace of the order: the order's own first (the receiver sorts by start)."""
    traces = [t for t in traces if t["spans"]]
    order_trace = traces[0]["trace_id"] if traces else None
    return [waterfall(t, order_trace) for t in traces]


def register(app: Flask, traces_url: str | None) -> None:
    """``GET /orders/<order_id>/trace``; without a receiver the page says how to get one."""
    app.jinja_env.globals["traces_url"] = traces_url

    @app.get("/orders/<order_id>/trace")
    def order_trace(order_id: str) -> str | tuple[str, int]:
        if len(order_id) > 64:
            abort(404, description="order ids are at most 64 characters")
        if not traces_url:
            return render_template("order_trace.html", order_id=order_id, traces=[], problem=(
                "no trace receiver: start the stack with `ordertasks dev --tracing` (ORDERTASKS_TRACES_URL); "
                "in the cloud, open the order's trace in Cloud Trace")), 404
        try:
            found = fetch_order_traces(traces_url, order_id)
        except TracesUnavailable as exc:
            return render_template("order_trace.html", order_id=order_id, traces=[], problem=str(exc)), 503
        return render_template("order_trace.html", order_id=order_id, traces=waterfalls(found), problem=None)
