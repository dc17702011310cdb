"""Case 2: dependency faults through the full local stack (emulator, handler, checkout,
SMTP, warehouse as separate processes, as ``ordertasks dev`` runs them).

Each scenario places real orders through ``POST /api/checkout`` and lets the Cloud Tasks
emulator deliver and retry; then the ledger must balance: every task the outbox owes is
done or in the failed-task log, and no effect happened twice at its far end.
"""

from __future__ import annotations

from pathlib import Path

import requests

from tests.reliability.stack import LocalStack
from tests.support.samples import fast_catalog
from tests.support.servers import wait_until

ORDERS = 6


def _balanced(stack: LocalStack, order_ids: list[str], timeout: float = 90) -> None:
    ledger = stack.wait_accounted(order_ids, timeout=timeout)
    assert ledger.duplicates == {}, ledger.duplicates
    assert len(ledger.owed) == stack.kinds_per_order * len(order_ids)


def _warehouse(stack: LocalStack) -> dict[str, object]:
    return requests.get(f"{stack.url('warehouse')}/notifications", timeout=10).json()


def test_flaky_warehouse_every_notification_done_once(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path, fast_catalog(tmp_path), warehouse_mode="flaky").start()
    try:
        order_ids = stack.place_orders(ORDERS)
        _balanced(stack, order_ids)
        ledger = stack.ledger(order_ids)
        assert ledger.failed == set(), "a 50 % flaky warehouse must not exhaust 8 attempts at 0.1-0.5 s backoff"
        seen = _warehouse(stack)
        assert len(seen["notifications"]) == ORDERS  # type: ignore[arg-type]
        assert seen["requests"] >= 2 * ORDERS, "every first notification got a 503 and was retried"  # type: ignore[operator]
    finally:
        stack.stop()


def test_rejecting_warehouse_fails_after_one_attempt(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path, fast_catalog(tmp_path), warehouse_mode="reject").start()
    try:
        order_ids = stack.place_orders(ORDERS)
        _balanced(stack, order_ids)
        ledger = stack.ledger(order_ids)
        assert ledger.failed == {(o, "notify_warehouse") for o in order_ids}
        with stack.store() as store:
            for order_id in order_ids:
                record = store.failed.get_failed(f"{order_id}:notify_warehouse")
                assert record is not None and record.error_type == "Rejected" and "422" in record.error
                assert (record.attempts, len(record.history)) == (1, 1), "a 4xx is permanent: no retry"
        assert _warehouse(stack)["requests"] == ORDERS
    finally:
        stack.stop()


def test_warehouse_that_never_answers_is_retried_then_failed_then_replayable(tmp_path: Path) -> None:
    # The warehouse sleeps 3 s; the handler gives up after 0.5 s; 3 attempts per task.
    stack = LocalStack(tmp_path, fast_catalog(tmp_path, max_attempts=3), warehouse_mode="slow",
                       env={"ORDERTASKS_WAREHOUSE_TIMEOUT": "0.5"},
                       extra_argv={"warehouse": ["--slow-seconds", "3"]}).start()
    try:
        order_ids = stack.place_orders(2)
        _balanced(stack, order_ids)
        with stack.store() as store:
            for order_id in order_ids:
                record = store.failed.get_failed(f"{order_id}:notify_warehouse")
                assert record is not None and record.error_type == "DependencyUnavailable"
                assert record.attempts == 3 and "did not answer" in record.error
        # The operator fixes the warehouse and replays: done, and still one notification each.
        stack.warehouse_mode("ok")
        for order_id in order_ids:
            replay = stack.cli("failed", "replay", f"{order_id}:notify_warehouse")
            assert replay.returncode == 0, replay.stdout + replay.stderr
        def replayed_done() -> bool:
            ledger = stack.ledger(order_ids)
            return {(o, "notify_warehouse") for o in order_ids} <= ledger.done
        wait_until(replayed_done, timeout=60, interval=0.3, what="replays done")
        assert stack.ledger(order_ids).duplicates == {}
    finally:
        stack.stop()


def test_smtp_down_then_back_delivers_each_email_once(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path, fast_catalog(tmp_path, max_attempts=200)).start()
    try:
        stack.servers["smtp"].stop()
        order_ids = stack.place_orders(ORDERS)
        def retried() -> bool:
            with stack.store() as store:
                records = [store.effects.get_effect(o, "send_confirmation_email") for o in order_ids]
            return all(r is not None and r.attempts >= 2 for r in records)
        wait_until(retried, timeout=60, interval=0.3, what="every confirmation retried while SMTP is down")
        stack.restart("smtp")
        _balanced(stack, order_ids)
        ledger = stack.ledger(order_ids)
        assert ledger.failed == set()
        for order_id in order_ids:
            assert ledger.effects[(order_id, "send_confirmation_email")] == 1
    finally:
        stack.stop()
