"""Every owed effect is accounted for on the Firestore emulator too (issue 27).

The same fault as ``test_owed_effects.py``'s first case, with the stores on the Firestore
emulator: the real Cloud Tasks emulator dispatches to a handler (``build_handler`` on a real
HTTP server) that is down for longer than the queues' whole retry span, so Cloud Tasks
deletes every task with no failed record; then the handler comes back and the auditor
(``OrderTasks.reconcile``, two at once for its first run) accounts for every owed effect.
Effects are counted where they land: SMTP messages, invoice files, analytics facts,
warehouse notifications. The rig is ``firestore_rig.py``; the other faults are in
``test_owed_effects_firestore_faults.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.reliability.firestore_rig import FirestoreRig, audit_until_accounted, firestore_rig
from tests.reliability.test_owed_effects import dropping_catalog
from tests.support.servers import wait_until

pytestmark = pytest.mark.firestore
ORDERS = 4


@pytest.fixture
def rig(tmp_path: Path, firestore_emulator: str) -> Iterator[FirestoreRig]:
    with firestore_rig(tmp_path, dropping_catalog(tmp_path)) as made:
        yield made


def test_handler_down_past_the_retry_span_loses_nothing_on_firestore(rig: FirestoreRig) -> None:
    order_ids = rig.place([f"ord_fs_down_{n}" for n in range(ORDERS)])
    wait_until(lambda: rig.held(order_ids) == 0, timeout=60, what="Cloud Tasks to drop every task of the outage")
    rig.library.reconcile(grace_seconds=0, audit=False)            # what reconcile did before the ledger
    before = rig.ledger(order_ids)
    owed = len(order_ids) * rig.kinds_per_order
    print(f"\nfirestore, before the auditor: owed {owed}, lost {len(before.lost)}, failed {len(before.failed)}, "
          f"effects {sum(before.effects.values())}")
    assert len(before.lost) == owed and not before.failed and not before.effects
    server = rig.start_handler()
    try:
        wait_until(lambda: rig.audit_due(order_ids), timeout=90, interval=1.0, what="the retry span to pass")
        with ThreadPoolExecutor(max_workers=2) as pool:          # two auditors at once
            runs = list(pool.map(lambda _: rig.library.reconcile(grace_seconds=0), range(2)))
        assert sum(r.audit.recreated for r in runs if r.audit) == owed, runs
        after = audit_until_accounted(rig, order_ids, timeout=120)
    finally:
        server.shutdown()                                           # type: ignore[attr-defined]
    print(f"firestore, after the auditor: owed {owed}, lost {len(after.lost)}, failed {len(after.failed)}, "
          f"effects {sum(after.effects.values())}, duplicated {len(after.duplicates)}")
    assert after.lost == set() and after.failed == set()
    assert len(after.effects) == owed and set(after.effects.values()) == {1}, after.duplicates
