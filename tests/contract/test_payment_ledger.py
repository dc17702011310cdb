"""The ``PaymentLedger`` contract, over memory, SQLite and Firestore (the emulator)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ordertasks.producer.ledger import REFUNDED, REQUIRES_ACTION, SUCCEEDED, MemoryLedger, Payment, PaymentLedger
from ordertasks.producer.ledger_sqlite import SqliteLedger
from tests.contract.conftest import BACKENDS, firestore_client_for, sanitized_project_id

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
PAID = Payment("ord_1", "local", "ch_1", Decimal("27.51"), "EUR", SUCCEEDED, T0, "tok_visa")


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


def test_every_backend_is_a_ledger(ledger: Any) -> None:
    assert isinstance(ledger, PaymentLedger)


def test_a_payment_comes_back_exactly_as_recorded(ledger: Any) -> None:
    assert ledger.record_payment(PAID) == PAID
    assert ledger.get_payment("ord_1") == PAID
    assert ledger.get_payment("ord_2") is None


def test_the_first_record_of_an_order_wins(ledger: Any) -> None:
    ledger.record_payment(PAID)
    second = replace(PAID, payment_id="ch_2", amount=Decimal("1.00"))
    assert ledger.record_payment(second) == PAID
    assert ledger.list_payments() == [PAID]


def test_concurrent_records_for_one_order_agree(ledger: Any) -> None:
    attempts = [replace(PAID, payment_id=f"ch_{n}") for n in range(12)]
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(ledger.record_payment, attempts))
    assert len({a.payment_id for a in answers}) == 1
    assert len(ledger.list_payments()) == 1


def test_state_changes_keep_everything_else(ledger: Any) -> None:
    waiting = replace(PAID, processor="stripe", payment_id="pi_1", state=REQUIRES_ACTION, test=True)
    ledger.record_payment(waiting)
    assert ledger.set_state("ord_1", SUCCEEDED) == replace(waiting, state=SUCCEEDED)
    refunded = ledger.set_state("ord_1", REFUNDED, "re_1")
    assert refunded == replace(waiting, state=REFUNDED, refund_id="re_1")
    assert ledger.set_state("ord_1", REFUNDED) == refunded   # the refund id stays
    assert ledger.set_state("ord_nope", SUCCEEDED) is None


def test_list_is_oldest_first(ledger: Any) -> None:
    later = replace(PAID, order_id="ord_0", created_at=T0 + timedelta(seconds=1))
    ledger.record_payment(later)
    ledger.record_payment(PAID)
    assert [p.order_id for p in ledger.list_payments()] == ["ord_1", "ord_0"]
