"""Warehouse notification through HttpWebhookClient to a real HTTP server in a thread."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

import pytest

from ordertasks.handlers.backends.http import HttpWebhookClient, retry_after_seconds
from ordertasks.handlers.errors import DependencyUnavailable, Rejected, Throttled
from ordertasks.handlers.kind import EffectContext
from ordertasks.handlers.webhook import post_webhook
from tests.effects.conftest import Reply, Warehouse
from tests.effects.orders import FixedClock, eur_order, task_for
from tests.support.servers import free_port

TASK = task_for("notify_warehouse", "A1001", eur_order())


def _notify(warehouse: Warehouse, make_context: Callable[..., EffectContext], **client: Any) -> dict[str, Any]:
    return post_webhook(TASK, make_context(warehouse=warehouse.client(**client)))


@pytest.mark.parametrize("status", [200, 201, 202])
def test_2xx_is_done_and_sends_the_idempotency_key(status: int, warehouse: Warehouse,
                                                   make_context: Callable[..., EffectContext]) -> None:
    warehouse.reply = Reply(status=status, body=b'{"id": "WH-42"}')
    assert _notify(warehouse, make_context) == {"status": status, "reference": "WH-42"}
    [request] = warehouse.requests
    assert request.headers["Idempotency-Key"] == "A1001:notify_warehouse"
    assert request.headers["Content-Type"] == "application/json"
    assert request.path == "/v1/notifications"
    assert request.body["order_id"] == "A1001"
    assert request.body["placed_at"] == "2024-03-01T23:30:00+00:00"
    assert request.body["ship_to"]["city"] == "Lyon" and request.body["ship_to"]["country"] == "FR"
    assert [(i["sku"], i["quantity"]) for i in request.body["items"]] == [
        ("DESK-OAK", 1), ("LAMP-01", 2), ("CABLE-2M", 3), ("LAMP-01", 1)]


def test_2xx_without_json_body_has_no_ref(warehouse: Warehouse, make_context: Callable[..., EffectContext]) -> None:
    warehouse.reply = Reply(status=204, body=b"")
    assert _notify(warehouse, make_context) == {"status": 204, "reference": None}


def test_bearer_token_is_sent(warehouse: Warehouse, make_context: Callable[..., EffectContext]) -> None:
    _notify(warehouse, make_context, token="s3cret")
    assert warehouse.requests[0].headers["Authorization"] == "Bearer s3cret"


def test_409_already_received_is_done(warehouse: Warehouse, make_context: Callable[..., EffectContext]) -> None:
    warehouse.reply = Reply(status=409, body=b'{"error": "already received", "id": "WH-1"}')
    assert _notify(warehouse, make_context) == {"status": 409, "reference": "WH-1", "already_received": True}


@pytest.mark.parametrize("status", [400, 404, 422])
def test_other_4xx_is_rejected_with_status_and_excerpt(status: int, warehouse: Warehouse,
                                                       make_context: Callable[..., EffectContext]) -> None:
    warehouse.reply = Reply(status=status, body=b'{"error": "unknown sku DESK-OAK", "detail": "' + b"x" * 5000 + b'END-MARKER"}')
    with pytest.raises(Rejected, match=str(status)) as caught:
        _notify(warehouse, make_context)
    assert "unknown sku DESK-OAK" in str(caught.value) and "END-MARKER" not in str(caught.value)


def test_429_honours_retry_after_seconds(warehouse: Warehouse, make_context: Callable[..., EffectContext]) -> None:
    warehouse.reply = Reply(status=429, headers={"Retry-After": "7"}, body=b"{}")
    with pytest.raises(Throttled) as caught:
        _notify(warehouse, make_context)
    assert caught.value.retry_after == 7


def test_429_honours_retry_after_http_date(warehouse: Warehouse, make_context: Callable[..., EffectContext]) -> None:
    clock = FixedClock(datetime(2024, 3, 2, 9, 0, tzinfo=timezone.utc))
    later = datetime(2024, 3, 2, 9, 1, 30, tzinfo=timezone.utc)
    warehouse.reply = Reply(status=429, headers={"Retry-After": format_datetime(later, usegmt=True)}, body=b"{}")
    with pytest.raises(Throttled) as caught:
        _notify(warehouse, make_context, clock=clock)
    assert caught.value.retry_after == 90


def test_retry_after_parsing_edge_cases() -> None:
    now = datetime(2024, 3, 2, 9, 0, tzinfo=timezone.utc)
    assert retry_after_seconds(None, now) is None
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds("Sat, 02 Mar 2024 08:00:00 GMT", now) == 0.0   # already past


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_retryable(status: int, warehouse: Warehouse, make_context: Callable[..., EffectContext]) -> None:
    warehouse.reply = Reply(status=status, body=b"upstream down")
    with pytest.raises(DependencyUnavailable, match=str(status)):
        _notify(warehouse, make_context)


def test_timeout_is_retryable(warehouse: Warehouse, make_context: Callable[..., EffectContext]) -> None:
    warehouse.reply = Reply(delay=1.0)
    with pytest.raises(DependencyUnavailable, match="0.2s"):
        _notify(warehouse, make_context, timeout=0.2)


def test_closed_port_is_retryable() -> None:
    client = HttpWebhookClient(f"http://127.0.0.1:{free_port()}/v1/notifications", timeout=1)
    with pytest.raises(DependencyUnavailable, match="unreachable"):
        client.post("A1001:notify_warehouse", {"order_id": "A1001"})
