"""Task names, schedules and the Task message, without a server."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone

import pytest

from ordertasks.infra.config import Settings, load_catalog
from ordertasks.handlers.settings import OidcSettings, TasksSettings
from ordertasks.producer.enqueue import build_task, plan_task, task_id, task_name
from tests.producer.conftest import CATALOG

PLACED = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def test_task_name_is_hash_prefix_order_and_kind() -> None:
    name = task_name("p", "l", "q", "ord_abc", "generate_invoice")
    prefix = hashlib.sha256(b"ord_abc:generate_invoice").hexdigest()[:8]
    assert name == f"projects/p/locations/l/queues/q/tasks/{prefix}-ord_abc-generate_invoice"


def test_task_name_is_deterministic_and_spread() -> None:
    names = [task_id(f"ord_{i:05d}", "record_analytics") for i in range(200)]
    assert names == [task_id(f"ord_{i:05d}", "record_analytics") for i in range(200)]
    assert len({n[:2] for n in names}) > 100  # sequential ids do not give sequential names


def test_replays_get_a_suffix() -> None:
    assert task_id("o1", "notify_warehouse", replay=3).endswith("-o1-notify_warehouse-r3")
    assert task_id("o1", "notify_warehouse", replay=0) == task_id("o1", "notify_warehouse")


@pytest.mark.parametrize("order_id", ["a/b", "..", "ä", "a" * 65, "__x", "", "a b"])
def test_invalid_order_ids_never_make_a_name(order_id: str) -> None:
    with pytest.raises(ValueError, match="is invalid"):
        task_id(order_id, "record_analytics")


def test_longest_names_stay_valid() -> None:
    ident = task_id("A" * 64, "send_confirmation_email", replay=999999)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,500}", ident)


def test_schedule_is_placed_at_plus_scaled_delay() -> None:
    catalog = load_catalog(CATALOG)
    settings = Settings(catalog_path=CATALOG)
    plan = plan_task(catalog, settings, "o1", "generate_invoice", PLACED)
    assert plan.schedule_time == PLACED + timedelta(seconds=30)
    fast = plan_task(catalog, settings.with_changes(tasks={"delay_scale": 0.01}), "o1", "request_review", PLACED)
    assert fast.schedule_time == PLACED + timedelta(seconds=6048)


def test_task_message_has_post_json_oidc_and_deadline() -> None:
    catalog = load_catalog(CATALOG)
    settings = Settings(catalog_path=CATALOG, tasks=TasksSettings(handler_url="https://handler.example/run?x=1"),
                        oidc=OidcSettings(audience="https://handler.example/"))
    plan = plan_task(catalog, settings, "o1", "notify_warehouse", PLACED)
    task = build_task(catalog, settings, plan, b'{"kind":"notify_warehouse"}')
    assert task.name == plan.name
    assert task.http_request.url == "https://handler.example/run?x=1"
    assert task.http_request.http_method.name == "POST"
    assert task.http_request.headers["Content-Type"] == "application/json"
    assert task.http_request.oidc_token.audience == "https://handler.example/"  # not the URL with its query
    assert task.http_request.oidc_token.service_account_email.startswith("ordertasks-dispatcher@")
    assert task.dispatch_deadline == timedelta(seconds=60)
    assert task.schedule_time == PLACED + timedelta(seconds=60)
