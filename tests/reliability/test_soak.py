"""Case 7 (``make soak`` only): N orders (10 000 by default, ``SOAK_ORDERS``) through the
whole local stack with the warehouse flaky, then the ledger and each process's memory.

Queues get 500 dispatches/s (Cloud Tasks' per-queue maximum) so the run measures our code,
not the warehouse queue's 5/s production throttle. The figures go to stdout and to
``SOAK_REPORT`` (a JSON file) when that variable is set.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.reliability.stack import LocalStack
from tests.support.samples import fast_catalog
from tests.support.servers import wait_until

ORDERS = int(os.environ.get("SOAK_ORDERS", "10000"))


def _settled_count(stack: LocalStack) -> int:
    """Done effects plus failed records: cheap enough to poll while every order's tasks run."""
    with stack.store() as store:
        done = sum(c.get("done", 0) for c in store.effects.effect_counts().values())
        failed = len(store.failed.list_failed(limit=1_000_000))
    return done + failed


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
def test_soak_ledger_balances_and_memory_stays_flat(tmp_path: Path) -> None:
    config = fast_catalog(tmp_path, max_attempts=100, rate=500)
    stack = LocalStack(tmp_path, config, warehouse_mode="flaky").start()
    kinds_per_order = stack.kinds_per_order
    try:
        stack.place_orders(20)                      # warm every process before measuring memory
        wait_until(lambda: _settled_count(stack) >= 20 * kinds_per_order, timeout=120, interval=1)
        rss_start, started = stack.rss(), time.monotonic()
        order_ids = stack.place_orders(ORDERS, workers=16)
        placed = time.monotonic() - started
        total = (ORDERS + 20) * kinds_per_order
        wait_until(lambda: _settled_count(stack) >= total, timeout=4 * 3600, interval=5, what="soak settled")
        seconds, rss_end = time.monotonic() - started, stack.rss()
        ledger = stack.ledger(order_ids)
        report = {"orders": ORDERS, **ledger.summary(), "checkout_seconds": round(placed, 1),
                  "total_seconds": round(seconds, 1), "rss_kib_start": rss_start, "rss_kib_end": rss_end}
        print("SOAK", json.dumps(report))
        if os.environ.get("SOAK_REPORT"):
            Path(os.environ["SOAK_REPORT"]).write_text(json.dumps(report, indent=2))
        assert ledger.lost == set() and ledger.duplicates == {}, report
        assert len(ledger.owed) == len(ledger.done | ledger.failed) == ORDERS * kinds_per_order, report
    finally:
        stack.stop()
