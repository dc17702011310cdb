"""The local payment gateway: test tokens, idempotency, a persistent ledger."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

from ordertasks.producer.payments import LocalGateway, PaymentDeclined, PaymentUnavailable


def test_visa_is_charged_once_per_key() -> None:
    gateway = LocalGateway()
    first = gateway.charge("ord_1", Decimal("10.00"), "EUR", "tok_visa")
    assert gateway.charge("ord_1", Decimal("10.00"), "EUR", "tok_visa") == first
    assert [(c.idempotency_key, c.amount) for c in gateway.charges()] == [("ord_1", Decimal("10.00"))]


def test_declined_and_unavailable_charge_nothing() -> None:
    gateway = LocalGateway()
    with pytest.raises(PaymentDeclined, match="declined"):
        gateway.charge("ord_1", Decimal("1"), "EUR", "tok_declined")
    with pytest.raises(PaymentUnavailable, match="nothing was charged"):
        gateway.charge("ord_2", Decimal("1"), "EUR", "tok_unavailable")
    with pytest.raises(PaymentDeclined):
        gateway.charge("ord_3", Decimal("1"), "EUR", "tok_unknown")
    assert gateway.charges() == []


def test_key_reused_for_another_amount_is_refused() -> None:
    gateway = LocalGateway()
    gateway.charge("ord_1", Decimal("10.00"), "EUR", "tok_visa")
    with pytest.raises(PaymentDeclined, match="already used"):
        gateway.charge("ord_1", Decimal("11.00"), "EUR", "tok_visa")


def test_concurrent_charges_with_one_key_charge_once() -> None:
    gateway = LocalGateway()
    with ThreadPoolExecutor(16) as pool:
        ids = set(pool.map(lambda _: gateway.charge("ord_1", Decimal("5"), "EUR", "tok_visa"), range(64)))
    assert len(ids) == 1
    assert len(gateway.charges()) == 1


def test_ledger_file_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "payments.db"
    first = LocalGateway(path)
    charge_id = first.charge("ord_1", Decimal("5"), "EUR", "tok_visa")
    first.close()
    again = LocalGateway(path)
    assert again.charge("ord_1", Decimal("5"), "EUR", "tok_visa") == charge_id
    assert len(again.charges()) == 1


def test_two_gateways_on_one_file_charge_once(tmp_path: Path) -> None:
    path = tmp_path / "payments.db"
    a, b = LocalGateway(path), LocalGateway(path)
    assert a.charge("ord_1", Decimal("5"), "EUR", "tok_visa") == b.charge("ord_1", Decimal("5"), "EUR", "tok_visa")
    assert len(a.charges()) == 1
