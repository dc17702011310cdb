"""Tracing, as a port: one trace per order, from the checkout through Cloud Tasks to each effect.

The project's code names what it traces through ``Tracing``; it never imports OpenTelemetry.
Two implementations:

- ``NO_TRACING`` (tracing off, the default): every method is a constant-time no-op and
  OpenTelemetry is never imported, so the handler's path costs what it cost before.
- ``handlers.otel.OtelTracing`` (tracing on: ``OTEL_TRACES_EXPORTER`` names an exporter, see
  ``handlers.settings.TracingSettings``): OpenTelemetry spans, built by ``tracing_for`` on first
  use, once per process; a missing ``ordertasks[tracing]`` extra stops start-up naming it.

What is traced, and how the trace crosses the queue:

    POST /api/checkout (server, continues the request's W3C traceparent)
      schedule order
        enqueue <kind>      (producer; the task's HTTP headers carry its traceparent)
    deliver <kind>          (one per delivery attempt, continues the task's traceparent)
      read order · claim · effect <kind>
        smtp send · blob put · POST <webhook> · requests' HTTP spans (GCS)

A kind delayed by ``LINK_AFTER_SECONDS`` or more (the follow-up email a day later) does not
keep the order's trace open for days: its task carries the order's context in
``LINK_HEADER`` instead of ``traceparent``, and each of its deliveries starts a trace of its
own with a span link to the order's.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, ContextManager, Protocol

from ordertasks.handlers.errors import ConfigurationError

if TYPE_CHECKING:
    from ordertasks.handlers.kind import EffectContext
    from ordertasks.handlers.settings import Settings

TRACEPARENT = "traceparent"
LINK_HEADER = "X-Ordertasks-Trace-Link"     # a traceparent value: link to it, do not continue it
LINK_AFTER_SECONDS = 3600.0                 # catalog delays from here on link instead of continuing
SPAN_KEY = "logging.googleapis.com/spanId"
SAMPLED_KEY = "logging.googleapis.com/trace_sampled"
HeaderSource = Any      # request headers: a Mapping[str, str] or werkzeug's Headers (anything with .get(name))


class Span(Protocol):
    """One span in progress, as the project's code touches it."""

    def set(self, **attributes: Any) -> None:
        """Set ``ordertasks.<name>`` attributes (``None`` values are left out)."""

    def rename(self, name: str) -> None:
        """Give the span the name learnt after it started (a delivery's kind)."""

    def failed(self, description: str, error_type: str | None = None) -> None:
        """Mark the span as an error (status ERROR, ``error.type``)."""

    def log_fields(self, project: str) -> dict[str, Any]:
        """Cloud Logging's trace, span id and sampled fields of this span (empty when not traced)."""


class Tracing(Protocol):
    """Where spans come from (``NO_TRACING`` or ``handlers.otel.OtelTracing``)."""

    enabled: bool

    def incoming(self, name: str, headers: HeaderSource, span_kind: str = "server",
                 **attributes: Any) -> ContextManager[Span]:
        """A span for a request that may carry a trace: continues ``traceparent``, or starts a
        trace linked to ``LINK_HEADER``'s context, or starts a new trace. ``span_kind``: ``server``
        or ``consumer``."""

    def span(self, name: str, span_kind: str = "internal", **attributes: Any) -> ContextManager[Span]:
        """A child of the current span (``internal``, ``client`` or ``producer``); an exception
        leaving it is recorded on it and re-raised."""

    def task_headers(self, delayed: bool) -> dict[str, str]:
        """The HTTP headers a task created now carries: ``traceparent`` of the current span, or
        for a ``delayed`` kind ``LINK_HEADER`` (empty when there is no current span)."""

    def instrument(self, ctx: "EffectContext") -> "EffectContext":
        """``ctx`` with its far ends (mailer, blobs, webhooks) wrapped in client spans."""


class _NoSpan:
    """The span of ``NO_TRACING``: accepts everything, keeps nothing."""

    def set(self, **attributes: Any) -> None:
        """Nothing to set."""

    def rename(self, name: str) -> None:
        """Nothing to rename."""

    def failed(self, description: str, error_type: str | None = None) -> None:
        """Nothing to mark."""

    def log_fields(self, project: str) -> dict[str, Any]:
        """No trace: no fields."""
        return {}

    def __enter__(self) -> "_NoSpan":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


NO_SPAN = _NoSpan()


class NoTracing:
    """Tracing off: one shared no-op span for everything, no allocation per call."""

    enabled = False

    def incoming(self, name: str, headers: HeaderSource, span_kind: str = "server",
                 **attributes: Any) -> ContextManager[Span]:
        """The no-op span."""
        return NO_SPAN

    def span(self, name: str, span_kind: str = "internal", **attributes: Any) -> ContextManager[Span]:
        """The no-op span."""
        return NO_SPAN

    def task_headers(self, delayed: bool) -> dict[str, str]:
        """No headers."""
        return {}

    def instrument(self, ctx: "EffectContext") -> "EffectContext":
        """``ctx`` unchanged."""
        return ctx


NO_TRACING = NoTracing()

_started: Tracing | None = None
_lock = threading.Lock()


def tracing_for(settings: "Settings", service: str = "ordertasks") -> Tracing:
    """The process's tracing: ``NO_TRACING`` when ``settings.tracing`` is off, else the
    OpenTelemetry tracing started on the first call (``service``: the default
    ``service.name`` when ``OTEL_SERVICE_NAME`` is unset). ``ConfigurationError`` when tracing is
    on and the ``ordertasks[tracing]`` extra is not installed."""
    global _started
    if not settings.tracing.enabled:
        return NO_TRACING
    with _lock:
        if _started is None:
            _started = _start(settings, service)
        return _started


def _start(settings: "Settings", service: str) -> Tracing:
    try:
        from ordertasks.handlers import otel
    except ImportError as exc:
        raise ConfigurationError(
            f"OTEL_TRACES_EXPORTER={','.join(settings.tracing.exporters)} turns tracing on, but the OpenTelemetry "
            f"packages are not installed ({exc.name}): pip install 'ordertasks[tracing]', or unset "
            "OTEL_TRACES_EXPORTER") from exc
    return otel.start(settings.tracing, service)

