"""Item 6: a failed-task record closes once its effect has happened (no stale 'open' entries)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ordertasks.handlers.ports import FailureReport
from ordertasks.infra.config import load_catalog
from tests.functions.conftest import HandlerStack

KIND = "notify_warehouse"
FINAL_RETRY = load_catalog().queue_for(KIND).max_attempts - 1


def test_a_later_success_resolves_the_record_of_a_lost_lease_race(stack: HandlerStack) -> None:
    """Attack: a LeaseHeld final attempt leaves an 'open' record forever, hiding real failures in noise."""
    order = "ord_sec_lease"
    body = stack.task(KIND, order)
    # A concurrent delivery's lease, taken when the retries began: the queue's retry duration is used up too.
    retried_for = load_catalog().queue_for(KIND).max_retry_duration_seconds
    started = datetime.now(UTC) - timedelta(seconds=retried_for + 1)
    stack.store.effects.claim_effect(order, KIND, started, retried_for + 600.0, 86400.0)
    dead = stack.deliver(body, retry_count=FINAL_RETRY, task_name="ab-ord_sec_lease-notify_warehouse")
    assert dead.json()["outcome"] == "dead"
    assert stack.store.failed.get_failed(f"{order}:{KIND}").status == "open"
    stack.store.effects.release_effect(order, KIND, datetime.now(UTC))                # the concurrent one gave up
    done = stack.deliver(body, task_name="ab-ord_sec_lease-notify_warehouse-r1")
    assert done.json()["outcome"] == "done"
    closed = stack.store.failed.get_failed(f"{order}:{KIND}")
    assert (closed.status, closed.resolved_by) == ("resolved", "handler")
    assert "ab-ord_sec_lease-notify_warehouse-r1" in (closed.note or "")


def test_a_replay_that_finds_the_effect_done_resolves_the_record(stack: HandlerStack) -> None:
    """Attack: a replay answering DUPLICATE left the record 'replayed' forever."""
    order = "ord_sec_dup"
    body = stack.task(KIND, order)
    assert stack.deliver(body, task_name="ab-ord_sec_dup-notify_warehouse").json()["outcome"] == "done"
    # The failure of a delivery that raced the success is written after it (the race the handler cannot see).
    stack.store.failed.record_failure(FailureReport(order, KIND, "warehouse", "ab-ord_sec_dup-notify_warehouse", {},
                                             "LeaseHeld", "another delivery holds the claim", FINAL_RETRY + 1,
                                             datetime.now(UTC)))
    stack.store.failed.update_failed(f"{order}:{KIND}", "replayed", datetime.now(UTC))
    again = stack.deliver(body, task_name="ab-ord_sec_dup-notify_warehouse-r1")
    assert again.json()["outcome"] == "duplicate"
    closed = stack.store.failed.get_failed(f"{order}:{KIND}")
    assert (closed.status, closed.resolved_by) == ("resolved", "handler")
    assert "already done" in (closed.note or "")
    assert len(stack.warehouse.state.notifications) == 1


def test_an_operator_resolution_is_not_overwritten_by_the_handler(stack: HandlerStack) -> None:
    """Attack: the handler rewriting who resolved an entry would erase the operator's audit trail."""
    order = "ord_sec_ops"
    body = stack.task(KIND, order)
    stack.store.failed.record_failure(FailureReport(order, KIND, "warehouse", "t", {}, "Rejected", "400", 1,
                                             datetime.now(UTC)))
    stack.store.failed.update_failed(f"{order}:{KIND}", "resolved", datetime.now(UTC), resolved_by="ana", note="refunded")
    assert stack.deliver(body).json()["outcome"] == "done"
    kept = stack.store.failed.get_failed(f"{order}:{KIND}")
    assert (kept.status, kept.resolved_by, kept.note) == ("resolved", "ana", "refunded")
