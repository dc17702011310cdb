"""One trace per order, collected with the SDK's in-memory exporter (issue 34)."""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from ordertasks.handlers.logs import TRACE_KEY
from ordertasks.handlers.tracing import LINK_HEADER, SPAN_KEY
from tests.support.samples import EUR_CHECKOUT_BODY
from tests.tracing.conftest import TRACE_ID, TRACEPARENT, TracedStack

DELAYED = {"send_followup_email", "request_review"}     # catalog delays of a day and a week


def hex_trace(span: ReadableSpan) -> str:
    return f"{span.context.trace_id:032x}"


def named(spans: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def test_every_delivery_continues_the_checkout_trace_or_links_to_it(traced: TracedStack) -> None:
    order_id = traced.checkout(EUR_CHECKOUT_BODY, {"traceparent": TRACEPARENT})
    assert set(traced.deliver_all()) == {200}
    spans = traced.spans()
    (checkout,) = named(spans, "POST /api/checkout")
    assert hex_trace(checkout) == TRACE_ID and checkout.kind is SpanKind.SERVER
    assert checkout.attributes["ordertasks.order_id"] == order_id
    deliveries = named(spans, "deliver ")
    kinds = {s.attributes["ordertasks.kind"] for s in deliveries}
    assert kinds == {"send_confirmation_email", "record_analytics", "generate_invoice", "notify_warehouse",
                     *DELAYED}
    for span in deliveries:
        kind = span.attributes["ordertasks.kind"]
        assert span.attributes["ordertasks.order_id"] == order_id
        assert span.attributes["ordertasks.outcome"] == "done" and span.attributes["ordertasks.attempt"] == 1
        assert span.attributes["ordertasks.queue"] and span.attributes["ordertasks.task_name"]
        if kind in DELAYED:
            assert hex_trace(span) != TRACE_ID and span.parent is None
            assert [f"{link.context.trace_id:032x}" for link in span.links] == [TRACE_ID]
        else:
            assert hex_trace(span) == TRACE_ID
            (enqueue,) = [s for s in spans if s.context.span_id == span.parent.span_id]
            assert enqueue.name == f"enqueue {kind}" and enqueue.kind is SpanKind.PRODUCER


def test_each_delivery_has_read_claim_effect_and_far_end_spans(traced: TracedStack) -> None:
    traced.checkout(EUR_CHECKOUT_BODY)
    traced.deliver_all()
    spans = traced.spans()
    far_end = {"send_confirmation_email": "smtp send", "generate_invoice": "blob put",
               "notify_warehouse": "POST notify_warehouse"}
    for delivery in named(spans, "deliver "):
        kind = delivery.attributes["ordertasks.kind"]
        steps = [s.name for s in children(spans, delivery)]
        assert steps == ["read order", "claim", f"effect {kind}"], kind
        (effect,) = named(children(spans, delivery), "effect ")
        if kind in far_end:
            (call,) = children(spans, effect)
            assert call.name == far_end[kind] and call.kind is SpanKind.CLIENT
    (claim,) = [s for s in spans if s.name == "claim" and s.attributes["ordertasks.kind"] == "notify_warehouse"]
    assert claim.attributes["ordertasks.claim"] == "claimed"


def test_a_retried_effect_has_one_span_per_attempt_and_the_far_end_failure_on_its_span(traced: TracedStack) -> None:
    traced.warehouse.state.mode = "flaky"       # the first new notification answers 503
    traced.checkout(EUR_CHECKOUT_BODY, {"traceparent": TRACEPARENT})
    traced.deliver_all()
    (queued,) = [q for q in traced.queues.due(traced.queues.clock.now()) if q.name.endswith("notify_warehouse")]
    assert traced.deliver(queued, retry_count=1) == 200
    spans = traced.spans()
    attempts = named(spans, "deliver notify_warehouse")
    assert [(s.attributes["ordertasks.attempt"], s.attributes["ordertasks.outcome"]) for s in attempts] == \
        [(1, "retry"), (2, "done")]
    assert {hex_trace(s) for s in attempts} == {TRACE_ID}
    first, second = attempts
    assert first.status.status_code is StatusCode.ERROR and first.attributes["error.type"] == "DependencyUnavailable"
    assert first.attributes["http.response.status_code"] == 503
    assert second.status.status_code is StatusCode.UNSET
    (failed_call,) = [s for s in spans if s.name == "POST notify_warehouse"
                      and s.start_time >= first.start_time and s.end_time <= first.end_time]
    assert failed_call.status.status_code is StatusCode.ERROR
    assert [e.name for e in failed_call.events] == ["exception"]
    assert "503" in failed_call.events[0].attributes["exception.message"]
    (effect,) = [s for s in children(spans, first) if s.name.startswith("effect ")]
    assert effect.status.status_code is StatusCode.ERROR


def test_delivery_log_lines_carry_the_span_ids(traced: TracedStack, capsys: pytest.CaptureFixture[str]) -> None:
    traced.checkout(EUR_CHECKOUT_BODY, {"traceparent": TRACEPARENT})
    capsys.readouterr()
    traced.deliver_all()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    logged = {(line[TRACE_KEY], line[SPAN_KEY]) for line in lines if "outcome" in line}
    spans = {(f"projects/my-shop-project/traces/{hex_trace(s)}", f"{s.context.span_id:016x}")
             for s in named(traced.spans(), "deliver ")}
    assert logged == spans and len(spans) == 6


def test_tasks_carry_traceparent_and_delayed_kinds_the_link_header(traced: TracedStack) -> None:
    traced.checkout(EUR_CHECKOUT_BODY, {"traceparent": TRACEPARENT})
    for queued in traced.queues.due(traced.queues.clock.now()):
        headers = dict(queued.task.http_request.headers)
        delayed = any(queued.name.endswith(k) for k in DELAYED)
        assert (LINK_HEADER in headers) is delayed and ("traceparent" in headers) is not delayed, queued.name
        value = headers.get("traceparent") or headers[LINK_HEADER]
        assert value.split("-")[1] == TRACE_ID
