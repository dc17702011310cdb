"""``Tracing`` with OpenTelemetry (``handlers.tracing`` says what is traced and why).

Imported only when tracing is on (``handlers.tracing.tracing_for``): this module is the one
place that imports OpenTelemetry. ``start`` builds the process's ``TracerProvider`` from the
standard variables, which the SDK reads itself:

- ``OTEL_TRACES_EXPORTER``: ``otlp`` (OTLP over HTTP/protobuf to ``OTEL_EXPORTER_OTLP_ENDPOINT``;
  ``otlp_proto_grpc`` for gRPC, with its exporter installed), ``console``, ``gcp_trace`` (Cloud Trace), or any exporter registered under
  ``opentelemetry_traces_exporter``; several, comma-separated;
- ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` (default service ``ordertasks-<part>``),
  ``OTEL_TRACES_SAMPLER`` / ``_ARG``, ``OTEL_PROPAGATORS``, ``OTEL_BSP_*``.

A provider the process already installed (a shop's own ``TracerProvider``) is used as it is.
``requests`` (and so the GCS client and Stripe) is instrumented when its instrumentation is
installed; our webhook client speaks ``http.client`` and gets its span from ``TracedWebhook``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from ordertasks.handlers.errors import ConfigurationError
from ordertasks.handlers.logs import TRACE_KEY
from ordertasks.handlers.redact import redact_url
from ordertasks.handlers.tracing import LINK_HEADER, SAMPLED_KEY, SPAN_KEY, TRACEPARENT, HeaderSource

if TYPE_CHECKING:
    from ordertasks.handlers.kind import EffectContext
    from ordertasks.handlers.ports import BlobStore, Mailer, WebhookClient
    from ordertasks.handlers.settings import TracingSettings

KINDS = {"server": SpanKind.SERVER, "consumer": SpanKind.CONSUMER, "client": SpanKind.CLIENT,
         "producer": SpanKind.PRODUCER, "internal": SpanKind.INTERNAL}
PLAIN_ATTRIBUTES = ("http.", "url.", "server.", "error.", "network.", "messaging.")


def attribute_name(name: str) -> str:
    """``order_id`` → ``ordertasks.order_id``; semantic-convention names (``http.…``) as given
    (write them with ``__`` for the dot: ``http__response__status_code``)."""
    dotted = name.replace("__", ".")
    return dotted if dotted.startswith(PLAIN_ATTRIBUTES) else f"ordertasks.{dotted}"


def attributes_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """Span attributes from keyword values, ``None`` left out."""
    return {attribute_name(k): v for k, v in values.items() if v is not None}


class OtelSpan:
    """``handlers.tracing.Span`` over an OpenTelemetry span."""

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def set(self, **attributes: Any) -> None:
        """Set ``ordertasks.<name>`` attributes."""
        self.span.set_attributes(attributes_of(attributes))

    def rename(self, name: str) -> None:
        """Rename the span."""
        self.span.update_name(name)

    def failed(self, description: str, error_type: str | None = None) -> None:
        """Status ERROR with ``description``; ``error.type`` when known."""
        self.span.set_status(Status(StatusCode.ERROR, description[:500]))
        if error_type:
            self.span.set_attribute("error.type", error_type)

    def log_fields(self, project: str) -> dict[str, Any]:
        """``logging.googleapis.com/trace``, ``…/spanId`` and ``…/trace_sampled`` of this span."""
        ctx = self.span.get_span_context()
        if not ctx.is_valid:
            return {}
        return {TRACE_KEY: f"projects/{project}/traces/{ctx.trace_id:032x}", SPAN_KEY: f"{ctx.span_id:016x}",
                SAMPLED_KEY: ctx.trace_flags.sampled}


class OtelTracing:
    """``handlers.tracing.Tracing`` over an OpenTelemetry tracer (tests pass one over an
    in-memory exporter; ``start`` builds the process's)."""

    enabled = True

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    @contextmanager
    def incoming(self, name: str, headers: HeaderSource, span_kind: str = "server",
                 **attributes: Any) -> Iterator[OtelSpan]:
        """Continue the request's ``traceparent``; or a new trace linked to ``LINK_HEADER``'s."""
        parent, links = self._parent_and_links(headers)
        with self.tracer.start_as_current_span(name, context=parent, kind=KINDS[span_kind], links=links,
                                               attributes=attributes_of(attributes)) as span:
            yield OtelSpan(span)

    @staticmethod
    def _parent_and_links(headers: HeaderSource) -> tuple[otel_context.Context, list[Link]]:
        linked = headers.get(LINK_HEADER)
        if linked:
            found = trace.get_current_span(propagate.extract({TRACEPARENT: linked})).get_span_context()
            links = [Link(found, {"ordertasks.link": "order"})] if found.is_valid else []
            return otel_context.Context(), links
        return propagate.extract(headers), []

    @contextmanager
    def span(self, name: str, span_kind: str = "internal", **attributes: Any) -> Iterator[OtelSpan]:
        """A child of the current span; an exception leaving it is recorded and re-raised."""
        with self.tracer.start_as_current_span(name, kind=KINDS[span_kind], attributes=attributes_of(attributes)) as span:
            yield OtelSpan(span)

    def task_headers(self, delayed: bool) -> dict[str, str]:
        """``traceparent`` (and ``tracestate``) of the current span, or ``LINK_HEADER`` when ``delayed``."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        if TRACEPARENT not in carrier:
            return {}
        return {LINK_HEADER: carrier[TRACEPARENT]} if delayed else carrier

    def instrument(self, ctx: "EffectContext") -> "EffectContext":
        """``ctx`` with client spans around the mailer, the blob store and each webhook."""
        webhooks = {name: TracedWebhook(client, self, name) for name, client in ctx.webhooks.items()}
        return dataclasses.replace(ctx, mailer=TracedMailer(ctx.mailer, self), blobs=TracedBlobStore(ctx.blobs, self),
                                   webhooks=webhooks)


class TracedMailer:
    """A ``Mailer`` whose every send is a client span ``smtp send``."""

    def __init__(self, inner: "Mailer", tracing: OtelTracing) -> None:
        self.inner, self.tracing = inner, tracing

    def send(self, message: Any) -> None:
        """Send through the wrapped mailer, inside the span."""
        host, port = getattr(self.inner, "host", None), getattr(self.inner, "port", None)
        with self.tracing.span("smtp send", "client", server__address=host, server__port=port,
                               network__protocol__name="smtp"):
            self.inner.send(message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class TracedBlobStore:
    """A ``BlobStore`` whose writes are client spans ``blob put`` (GCS' own HTTP calls nest inside)."""

    def __init__(self, inner: "BlobStore", tracing: OtelTracing) -> None:
        self.inner, self.tracing = inner, tracing

    def put_once(self, path: str, data: bytes, content_type: str) -> bool:
        """Create ``path`` once, inside the span; ``created`` says whether it was new."""
        with self.tracing.span("blob put", "client", path=path, bytes=len(data)) as span:
            created = self.inner.put_once(path, data, content_type)
            span.set(created=created)
            return created

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class TracedWebhook:
    """A ``WebhookClient`` whose every post is a client span ``POST <kind>``."""

    def __init__(self, inner: "WebhookClient", tracing: OtelTracing, kind: str) -> None:
        self.inner, self.tracing, self.kind = inner, tracing, kind

    def post(self, idempotency_key: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Post through the wrapped client, inside the span (its status on the span)."""
        url = getattr(self.inner, "url", None)
        with self.tracing.span(f"POST {self.kind}", "client", http__request__method="POST",
                               url__full=redact_url(url) if isinstance(url, str) else None) as span:
            result = self.inner.post(idempotency_key, payload)
            span.set(http__response__status_code=result.get("status"))
            return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def exporter(name: str) -> SpanExporter:
    """The span exporter ``OTEL_TRACES_EXPORTER`` names; ``ConfigurationError`` for one not installed."""
    if name == "otlp":
        name = "otlp_proto_http"    # the extra's exporter; name ``otlp_proto_grpc`` for gRPC
    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        raise ConfigurationError(f"OTEL_TRACES_EXPORTER names {name!r}, which is not installed: use otlp, console "
                                 "or gcp_trace (pip install 'ordertasks[tracing]'), or none")
    made: SpanExporter = next(iter(found)).load()()
    return made


def start(settings: "TracingSettings", service: str) -> OtelTracing:
    """The process's tracing: its provider (or one already installed), exporters, and the
    ``requests`` instrumentation."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(resource=_resource(service))
        for name in settings.exporters:
            provider.add_span_processor(BatchSpanProcessor(exporter(name)))
        trace.set_tracer_provider(provider)
    _instrument_requests()
    return OtelTracing(provider.get_tracer("ordertasks"))


def _resource(service: str) -> Resource:
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    return resource


def _instrument_requests() -> None:
    try:
        from opentelemetry.instrumentation.requests import RequestsInstrumentor
    except ImportError:
        return
    instrumentor = RequestsInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
