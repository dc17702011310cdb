"""FailedTaskStore contract: create, append and re-open, list, compare-and-set status."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from ordertasks.handlers.ports import FailedTaskStore, FailureReport, Stores
from tests.contract.clock import T0, at
from tests.contract.concurrency import all_at_once


@pytest.fixture
def store(stores: Stores) -> FailedTaskStore:
    """The FailedTaskStore of each backend."""
    return stores.failed


def report(order_id: str = "o-1", kind: str = "notify_warehouse", attempt: int = 5, seconds: float = 0,
           error: str = "warehouse answered 503") -> FailureReport:
    return FailureReport(order_id, kind, "warehouse", f"projects/p/locations/l/queues/warehouse/tasks/ab-{order_id}-{kind}",
                         {"kind": kind, "v": 1, "order_id": order_id, "data": {"items": [{"sku": "A.1", "q": 2}]}},
                         "DependencyUnavailable", error, attempt, at(seconds))


def test_store_implements_the_port(store: Any) -> None:
    assert isinstance(store, FailedTaskStore)


def test_first_failure_creates_an_open_entry(store: Any) -> None:
    created = store.record_failure(report())
    assert created == store.get_failed("o-1:notify_warehouse")
    assert (created.id, created.status, created.attempts, created.replays) == ("o-1:notify_warehouse", "open", 5, 0)
    assert (created.first_failed_at, created.last_failed_at) == (T0, T0)
    assert created.payload["data"]["items"] == [{"sku": "A.1", "q": 2}]
    assert created.history == [{"attempt": 5, "failed_at": T0, "error_type": "DependencyUnavailable",
                                "error": "warehouse answered 503", "task_name": created.task_name}]
    assert (created.resolved_by, created.note) == (None, None)


def test_next_failure_appends_history_and_reopens(store: Any) -> None:
    store.record_failure(report())
    store.update_failed("o-1:notify_warehouse", "resolved", at(10), resolved_by="ana", note="restarted")
    again = store.record_failure(report(attempt=1, seconds=60, error="warehouse answered 400"))
    assert (again.status, again.attempts, again.error) == ("open", 1, "warehouse answered 400")
    assert (again.first_failed_at, again.last_failed_at) == (T0, at(60))
    assert [entry["failed_at"] for entry in again.history] == [T0, at(60)]
    assert (again.resolved_by, again.note) == ("ana", "restarted")
    assert store.get_failed("o-1:notify_warehouse") == again


def test_unknown_entry_is_none(store: Any) -> None:
    assert store.get_failed("nope:notify_warehouse") is None
    assert store.update_failed("nope:notify_warehouse", "resolved", T0) is None


def test_list_is_newest_first_and_filters_by_status_and_kind(store: Any) -> None:
    store.record_failure(report("o-1", "notify_warehouse", seconds=10))
    store.record_failure(report("o-2", "generate_invoice", seconds=30))
    store.record_failure(report("o-3", "notify_warehouse", seconds=20))
    store.update_failed("o-3:notify_warehouse", "resolved", at(40))
    ids = lambda tasks: [task.id for task in tasks]  # noqa: E731
    assert ids(store.list_failed()) == ["o-2:generate_invoice", "o-3:notify_warehouse", "o-1:notify_warehouse"]
    assert ids(store.list_failed(status="open")) == ["o-2:generate_invoice", "o-1:notify_warehouse"]
    assert ids(store.list_failed(kind="notify_warehouse")) == ["o-3:notify_warehouse", "o-1:notify_warehouse"]
    assert ids(store.list_failed(status="open", kind="notify_warehouse")) == ["o-1:notify_warehouse"]
    assert ids(store.list_failed(status="replayed")) == []
    assert ids(store.list_failed(limit=1)) == ["o-2:generate_invoice"]
    assert ids(store.list_failed(status="open", limit=1)) == ["o-2:generate_invoice"]


def test_update_without_expect_status_always_applies(store: Any) -> None:
    store.record_failure(report())
    updated = store.update_failed("o-1:notify_warehouse", "resolved", at(5), resolved_by="ana", note="refunded")
    assert updated is not None
    assert (updated.status, updated.resolved_by, updated.note, updated.replays) == ("resolved", "ana", "refunded", 0)
    assert store.get_failed("o-1:notify_warehouse") == updated


def test_update_with_expect_status_is_compare_and_set(store: Any) -> None:
    store.record_failure(report())
    assert store.update_failed("o-1:notify_warehouse", "replayed", at(1), expect_status="replay_requested") is None
    assert store.get_failed("o-1:notify_warehouse").status == "open"
    requested = store.update_failed("o-1:notify_warehouse", "replay_requested", at(2), expect_status="open")
    assert requested is not None and requested.status == "replay_requested"
    replayed = store.update_failed("o-1:notify_warehouse", "replayed", at(3), expect_status="replay_requested",
                                   count_replay=True)
    assert replayed is not None and (replayed.status, replayed.replays) == ("replayed", 1)


def test_twenty_concurrent_sweepers_replay_an_entry_once(store: Any) -> None:
    store.record_failure(report())
    store.update_failed("o-1:notify_warehouse", "replay_requested", at(1))
    results = all_at_once(lambda _: store.update_failed("o-1:notify_warehouse", "replayed", at(2),
                                                        expect_status="replay_requested", count_replay=True))
    assert Counter(result is None for result in results) == {True: 19, False: 1}
    assert store.get_failed("o-1:notify_warehouse").replays == 1


def test_unknown_status_is_refused_with_the_valid_ones(store: Any) -> None:
    store.record_failure(report())
    with pytest.raises(ValueError, match="replay_requested"):
        store.update_failed("o-1:notify_warehouse", "fixed", T0)


@pytest.mark.parametrize("status", ["open", "replay_requested", "replayed"])
def test_resolve_failed_closes_an_unresolved_entry(store: Any, status: str) -> None:
    created = store.record_failure(report())
    store.update_failed("o-1:notify_warehouse", status, at(1))
    closed = store.resolve_failed("o-1:notify_warehouse", at(2), resolved_by="handler", note="effect done by t-9")
    assert closed is not None
    assert (closed.status, closed.resolved_by, closed.note) == ("resolved", "handler", "effect done by t-9")
    assert (closed.history, closed.attempts, closed.error) == (created.history, 5, "warehouse answered 503")
    assert store.get_failed("o-1:notify_warehouse") == closed


def test_resolve_failed_leaves_a_resolved_entry_and_its_resolver_alone(store: Any) -> None:
    store.record_failure(report())
    store.update_failed("o-1:notify_warehouse", "resolved", at(1), resolved_by="ana", note="refunded")
    assert store.resolve_failed("o-1:notify_warehouse", at(2), resolved_by="handler", note="done") is None
    kept = store.get_failed("o-1:notify_warehouse")
    assert (kept.status, kept.resolved_by, kept.note) == ("resolved", "ana", "refunded")


def test_resolve_failed_of_an_unknown_entry_is_none_and_creates_nothing(store: Any) -> None:
    assert store.resolve_failed("nope:notify_warehouse", T0, resolved_by="handler", note="done") is None
    assert store.get_failed("nope:notify_warehouse") is None
    assert store.list_failed() == []


def test_a_failure_after_resolve_failed_reopens_the_entry(store: Any) -> None:
    store.record_failure(report())
    store.resolve_failed("o-1:notify_warehouse", at(1), resolved_by="handler", note="done")
    again = store.record_failure(report(seconds=60))
    assert again.status == "open" and len(again.history) == 2


def test_twenty_concurrent_resolvers_close_an_entry_once(store: Any) -> None:
    store.record_failure(report())
    results = all_at_once(lambda n: store.resolve_failed("o-1:notify_warehouse", at(2), resolved_by="handler",
                                                         note=f"done by {n}"))
    assert Counter(result is None for result in results) == {True: 19, False: 1}
    assert store.get_failed("o-1:notify_warehouse").status == "resolved"


# --- lifetime: a resolved entry expires (Firestore TTL on expire_at) -------------------------

DAY = 86400.0


def test_an_open_entry_never_expires(store: Any) -> None:
    assert store.record_failure(report()).expire_at is None


def test_resolving_by_hand_sets_expire_at_after_the_retention(store: Any) -> None:
    store.record_failure(report())
    resolved = store.update_failed("o-1:notify_warehouse", "resolved", at(10), resolved_by="ana", note="ok",
                                   retention_seconds=30 * DAY)
    assert resolved.expire_at == at(10 + 30 * DAY)
    assert store.get_failed("o-1:notify_warehouse").expire_at == at(10 + 30 * DAY)


def test_resolving_after_success_sets_expire_at_and_the_default_is_90_days(store: Any) -> None:
    store.record_failure(report())
    resolved = store.resolve_failed("o-1:notify_warehouse", at(20), resolved_by="handler", note="done")
    assert resolved.expire_at == at(20 + 90 * DAY)
    assert store.get_failed("o-1:notify_warehouse").expire_at == at(20 + 90 * DAY)


def test_another_status_or_a_new_failure_clears_expire_at(store: Any) -> None:
    store.record_failure(report())
    store.update_failed("o-1:notify_warehouse", "resolved", at(10))
    assert store.update_failed("o-1:notify_warehouse", "replay_requested", at(20)).expire_at is None
    store.update_failed("o-1:notify_warehouse", "resolved", at(30))
    reopened = store.record_failure(report(attempt=1, seconds=60))
    assert (reopened.status, reopened.expire_at) == ("open", None)
    assert store.get_failed("o-1:notify_warehouse").expire_at is None


def test_a_failure_after_expiry_starts_a_fresh_entry(store: Any) -> None:
    """TTL deletion lags by up to a day: an expired entry's history (and its error texts) is never revived."""
    store.record_failure(report(error="first failure, since resolved"))
    store.update_failed("o-1:notify_warehouse", "resolved", at(10), resolved_by="ana", retention_seconds=DAY)
    fresh = store.record_failure(report(attempt=1, seconds=10 + 2 * DAY, error="a new failure"))
    assert (fresh.status, fresh.first_failed_at, fresh.expire_at) == ("open", at(10 + 2 * DAY), None)
    assert [entry["error"] for entry in fresh.history] == ["a new failure"]
    assert fresh.resolved_by is None
