"""The operators' queries (console, ``ordertasks stats``) over every backend: counts by
aggregation, failed-task pages with cursors, orders by customer email."""

from __future__ import annotations

from typing import Any

import pytest

from ordertasks.handlers.ports import FailedFilter, OrderRecord, Stores
from tests.contract.clock import T0, at
from tests.contract.test_failed_task_store import report

LEASE, TTL = 60.0, 86400.0


@pytest.fixture
def store(stores: Stores) -> Stores:
    """Every port of each backend: the operators' queries read several."""
    return stores


def failures(store: Any) -> None:
    """Five entries over two kinds and two error types; one resolved."""
    for i, (kind, error_type) in enumerate([("notify_warehouse", "Rejected"), ("generate_invoice", "Rejected"),
                                            ("notify_warehouse", "DependencyUnavailable"),
                                            ("notify_warehouse", "Rejected"), ("record_analytics", "InvalidPayload")]):
        base = report(f"o-{i}", kind, seconds=10 * i)
        store.failed.record_failure(type(base)(**{**base.__dict__, "error_type": error_type}))
    store.failed.update_failed("o-3:notify_warehouse", "resolved", at(100), resolved_by="ana", note="ok")


@pytest.mark.parametrize(("where", "expected"), [
    (FailedFilter(), 5),
    (FailedFilter(status="open"), 4),
    (FailedFilter(kind="notify_warehouse"), 3),
    (FailedFilter(error_type="Rejected"), 3),
    (FailedFilter(status="open", kind="notify_warehouse", error_type="Rejected"), 1),
    (FailedFilter(failed_since=at(10)), 4),
    (FailedFilter(failed_since=at(10), failed_before=at(30)), 2),
    (FailedFilter(kind="notify_warehouse", failed_before=at(20)), 1),
    (FailedFilter(status="replayed"), 0),
])
def test_count_failed_counts_what_the_filter_means(store: Any, where: FailedFilter, expected: int) -> None:
    failures(store)
    assert store.failed.count_failed(where) == expected
    assert len(store.failed.page_failed(where, limit=50).entries) == expected


def test_pages_walk_newest_first_without_gaps_or_repeats(store: Any) -> None:
    failures(store)
    seen, cursor, pages = [], None, 0
    while True:
        page = store.failed.page_failed(FailedFilter(), limit=2, cursor=cursor)
        seen += [entry.id for entry in page.entries]
        pages += 1
        if page.cursor is None:
            break
        cursor = page.cursor
    assert seen == [f"o-{i}:{k}" for i, k in [(4, "record_analytics"), (3, "notify_warehouse"),
                                               (2, "notify_warehouse"), (1, "generate_invoice"),
                                               (0, "notify_warehouse")]]
    assert pages == 3


def test_a_full_last_page_has_no_cursor(store: Any) -> None:
    failures(store)
    page = store.failed.page_failed(FailedFilter(kind="notify_warehouse"), limit=3)
    assert len(page.entries) == 3 and page.cursor is None


def test_filtered_pages_continue_within_the_filter(store: Any) -> None:
    failures(store)
    first = store.failed.page_failed(FailedFilter(error_type="Rejected"), limit=1)
    second = store.failed.page_failed(FailedFilter(error_type="Rejected"), limit=5, cursor=first.cursor)
    assert [e.id for e in first.entries] == ["o-3:notify_warehouse"]
    assert [e.id for e in second.entries] == ["o-1:generate_invoice", "o-0:notify_warehouse"]


def test_ties_in_failure_time_are_ordered_by_id(store: Any) -> None:
    for order_id in ("o-a", "o-c", "o-b"):
        store.failed.record_failure(report(order_id, seconds=5))
    first = store.failed.page_failed(FailedFilter(), limit=2)
    rest = store.failed.page_failed(FailedFilter(), limit=2, cursor=first.cursor)
    assert [e.order_id for e in first.entries + rest.entries] == ["o-c", "o-b", "o-a"]


def test_a_malformed_cursor_is_a_value_error(store: Any) -> None:
    with pytest.raises(ValueError, match="cursor"):
        store.failed.page_failed(FailedFilter(), cursor="not-a-cursor")


def test_effect_counts_by_kind_state_and_time(store: Any) -> None:
    for i in range(3):
        store.effects.claim_effect(f"o-{i}", "notify_warehouse", at(i * 100), LEASE, TTL)
        store.effects.complete_effect(f"o-{i}", "notify_warehouse", {}, at(i * 100 + 1))
    store.effects.claim_effect("o-9", "notify_warehouse", at(500), LEASE, TTL)
    store.effects.claim_effect("o-0", "generate_invoice", T0, LEASE, TTL)
    store.effects.claim_effect("o-0", "notify_warehouse", at(600), LEASE, TTL)      # a duplicate delivery
    store.effects.claim_effect("o-1", "notify_warehouse", at(601), LEASE, TTL)      # and another
    assert store.effects.count_effects("notify_warehouse") == 4
    assert store.effects.count_effects("notify_warehouse", "done") == 3
    assert store.effects.count_effects("notify_warehouse", "in_progress") == 1
    assert store.effects.count_effects("notify_warehouse", "done", updated_since=at(100)) == 2
    assert store.effects.count_effects("generate_invoice", "done") == 0
    assert store.effects.count_effects("send_confirmation_email") == 0
    assert store.effects.duplicates_absorbed("notify_warehouse") == 2
    assert store.effects.duplicates_absorbed("generate_invoice") == 0


def order(order_id: str, email: str, seconds: float) -> OrderRecord:
    return OrderRecord(order_id, "created", {"customer": {"name": "N", "email": email}}, at(seconds))


def test_orders_by_email_are_newest_first_and_exact(store: Any) -> None:
    store.orders.create_order(order("o-1", "ana@example.com", 0))
    store.orders.create_order(order("o-2", "bob@example.com", 10))
    store.orders.create_order(order("o-3", "ana@example.com", 20))
    store.orders.create_order(OrderRecord("o-4", "created", {}, at(30)))
    assert [o.order_id for o in store.orders.orders_by_email("ana@example.com")] == ["o-3", "o-1"]
    assert [o.order_id for o in store.orders.orders_by_email("ana@example.com", limit=1)] == ["o-3"]
    assert store.orders.orders_by_email("nobody@example.com") == []
    assert [o.order_id for o in store.orders.recent_orders(limit=3)] == ["o-4", "o-3", "o-2"]
