"""The ledger's cancel-token digests and refund reasons, over memory, SQLite and Firestore (the emulator)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from ordertasks.producer.ledger import (PAID_AFTER_CANCEL, REFUNDED, REQUIRES_ACTION, Payment,
                                        cancel_digest, new_cancel_token)
from tests.contract.test_payment_ledger import ledger  # noqa: F401 - the fixture: every ledger backend

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


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
