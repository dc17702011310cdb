"""Case 1: 50 concurrent deliveries of one task give exactly one effect, per kind and store.

Cloud Tasks delivers at least once, and a retry can overlap a slow first attempt. Here the
same task arrives 50 times at once over real HTTP; the deliveries that meet the live lease
get 503 ``LeaseHeld`` and are delivered again, as Cloud Tasks would, until the task is
settled. The effect is counted where it lands: ``.eml`` messages at the SMTP server, the
daily analytics aggregate, PDF files, POSTs received by the warehouse.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.handler_rig import KINDS, Rig, make_store, task_body
from tests.support.servers import wait_until

COPIES = 50
BACKENDS = ["sqlite", pytest.param("firestore", marks=pytest.mark.firestore)]


def deliver_until_settled(rig: Rig, kind: str, order_id: str) -> str:
    """Redeliver (retry count rising, as Cloud Tasks does) until the answer is not a retry."""
    attempt = [0]

    def settled() -> str | None:
        attempt[0] += 1
        resp = rig.deliver(task_body(kind, order_id), kind, retry_count=min(attempt[0], 3))
        assert resp.status_code in (200, 503), resp.text
        return resp.json()["outcome"] if resp.status_code == 200 else None
    return wait_until(settled, timeout=60, interval=0.05, what=f"{kind} settled")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_fifty_concurrent_deliveries_give_one_effect(rig_for: Any, tmp_path: Path, request: pytest.FixtureRequest,
                                                     backend: str, kind: str) -> None:
    rig = rig_for(make_store(backend, tmp_path, request))
    order_id = f"ord_dup_{kind[:8]}"
    rig.place(order_id)
    with ThreadPoolExecutor(max_workers=COPIES) as pool:
        answers = list(pool.map(lambda _: rig.deliver(task_body(kind, order_id), kind), range(COPIES)))
    outcomes = Counter((a.status_code, a.json().get("outcome")) for a in answers)
    assert set(outcomes) <= {(200, "done"), (200, "duplicate"), (503, "retry")}, outcomes
    assert outcomes[(200, "done")] <= 1, outcomes
    if outcomes[(200, "done")] == 0:
        # The winner may still be inside the effect; its peers were told to come back.
        assert deliver_until_settled(rig, kind, order_id) in ("done", "duplicate")
    assert deliver_until_settled(rig, kind, order_id) == "duplicate"
    counts = rig.effects(order_id)
    assert counts[kind] == 1, counts
    assert sum(counts.values()) == 1, f"other effects happened too: {counts}"
    assert rig.store.failed.list_failed() == []
