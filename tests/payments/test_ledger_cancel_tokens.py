"""The ledger's cancel-token digests and refund reasons, over memory, SQLite and Firestore (the emulator)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ordertasks.producer.ledger import (PAID_AFTER_CANCEL, REFUNDED, REQUIRES_ACTION, MemoryLedger, Payment,
                                        cancel_digest, new_cancel_token)
from ordertasks.producer.ledger_sqlite import SqliteLedger
from tests.contract.conftest import BACKENDS, firestore_client_for, sanitized_project_id

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=BACKENDS)
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh, empty ledger of each backend."""
    if request.param == "memory":
        yield MemoryLedger()
    elif request.param == "sqlite":
        yield SqliteLedger(tmp_path / "store.db")
    else:
        from ordertasks.producer.ledger_firestore import FirestoreLedger

        request.getfixturevalue("firestore_emulator")
        yield FirestoreLedger(firestore_client_for(sanitized_project_id()))


def test_the_last_digest_kept_for_an_order_is_the_one_read_back(ledger: Any) -> None:
    assert ledger.get_cancel_digest("ord_1") is None
    first, second = cancel_digest(new_cancel_token()), cancel_digest(new_cancel_token())
    ledger.set_cancel_digest("ord_1", first, T0)
    assert ledger.get_cancel_digest("ord_1") == first
    ledger.set_cancel_digest("ord_1", second, T0)
    assert ledger.get_cancel_digest("ord_1") == second
    assert ledger.get_cancel_digest("ord_2") is None


def test_a_refund_keeps_its_reason(ledger: Any) -> None:
    ledger.record_payment(Payment("ord_1", "stripe", "pi_1", Decimal("27.51"), "EUR", REQUIRES_ACTION, T0))
    refunded = ledger.set_state("ord_1", REFUNDED, "re_1", PAID_AFTER_CANCEL)
    assert (refunded.state, refunded.refund_id, refunded.refund_reason) == (REFUNDED, "re_1", PAID_AFTER_CANCEL)
    assert ledger.get_payment("ord_1") == refunded
    assert ledger.set_state("ord_1", REFUNDED).refund_reason == PAID_AFTER_CANCEL   # kept when not given
