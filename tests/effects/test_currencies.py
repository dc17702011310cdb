"""The ISO 4217 table, and amounts checked and shown with each currency's minor units."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from ordertasks.handlers.contract import OrderSnapshot, describe_errors, new_order_snapshot
from ordertasks.handlers.currencies import (CURRENCY_EXPONENT, currency_problem, excess_decimals, format_money,
                                            minor_units)
from tests.effects.orders import jpy_order, kwd_order


@pytest.mark.parametrize(("code", "exponent"), [
    ("JPY", 0), ("ISK", 0), ("KRW", 0), ("CLP", 0), ("XOF", 0), ("KWD", 3), ("BHD", 3), ("JOD", 3), ("TND", 3),
    ("CLF", 4), ("UYW", 4), ("EUR", 2), ("USD", 2), ("GBP", 2), ("CHF", 2), ("INR", 2), ("XCG", 2)])
def test_well_known_minor_units(code: str, exponent: int) -> None:
    assert CURRENCY_EXPONENT[code] == exponent


def test_the_table_is_list_one_without_the_codes_that_have_no_minor_units() -> None:
    assert len(CURRENCY_EXPONENT) == 165
    assert all(len(code) == 3 and code.isupper() for code in CURRENCY_EXPONENT)
    for code in ("XAU", "XAG", "XDR", "XTS", "XXX", "BGN", "HRK", "ANG"):   # N.A. minor units, or withdrawn
        assert code not in CURRENCY_EXPONENT, code


def test_an_unknown_currency_is_refused_saying_what_to_use() -> None:
    assert currency_problem("KWD") is None
    assert currency_problem("eur") == "unknown currency 'eur': use an ISO 4217 code in upper case, such as EUR, " \
                                      "USD, JPY or KWD"


@pytest.mark.parametrize(("amount", "currency", "shown", "minor"), [
    ("1234.5", "EUR", "€1,234.50", 123450), ("4460", "JPY", "¥4,460", 4460), ("12.345", "KWD", "12.345 KWD", 12345),
    ("0.1234", "CLF", "0.1234 CLF", 1234), ("1000", "ISK", "1,000 ISK", 1000), ("12.3", "BHD", "12.300 BHD", 12300)])
def test_amounts_are_shown_and_counted_in_the_currency_s_minor_units(amount: str, currency: str, shown: str,
                                                                     minor: int) -> None:
    assert format_money(Decimal(amount), currency) == shown
    assert minor_units(Decimal(amount), currency) == minor


@pytest.mark.parametrize(("amount", "currency", "problem"), [
    ("1200.5", "JPY", "1200.5 has more decimals than JPY has: JPY amounts have no decimals"),
    ("1.2345", "KWD", "1.2345 has more decimals than KWD has: KWD amounts have at most 3 decimals"),
    ("9.999", "EUR", "9.999 has more decimals than EUR has: EUR amounts have at most 2 decimals")])
def test_an_amount_with_more_decimals_than_its_currency_is_named(amount: str, currency: str, problem: str) -> None:
    assert excess_decimals(Decimal(amount), currency) == problem


@pytest.mark.parametrize(("amount", "currency"), [("1200.00", "JPY"), ("1E+3", "JPY"), ("1.230", "KWD"),
                                                  ("1.20", "EUR"), ("0.1234", "CLF")])
def test_trailing_zeros_are_not_decimals(amount: str, currency: str) -> None:
    assert excess_decimals(Decimal(amount), currency) is None


def _with(order: OrderSnapshot, **changes: Any) -> dict[str, Any]:
    raw = order.model_dump(mode="json")
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = raw
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[leaf] = value
    return raw


@pytest.mark.parametrize(("changes", "message"), [
    ({"items__0__unit_price": "1200.5"}, "items.0.unit_price: 1200.5 has more decimals than JPY has: JPY amounts "
                                         "have no decimals"),
    ({"totals__tax": "360.25"}, "totals.tax: 360.25 has more decimals than JPY has"),
])
def test_a_new_jpy_order_with_decimals_is_refused_with_a_clear_message(changes: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        new_order_snapshot(_with(jpy_order(), **changes))
    assert message in describe_errors(caught.value)


def test_a_new_kwd_order_takes_three_decimals_and_refuses_four() -> None:
    assert new_order_snapshot(kwd_order().model_dump(mode="json")) == kwd_order()
    with pytest.raises(ValidationError) as caught:
        new_order_snapshot(_with(kwd_order(), totals__shipping="2.1071"))
    assert "totals.shipping: 2.1071 has more decimals than KWD has: KWD amounts have at most 3 decimals" in \
        describe_errors(caught.value)


def test_a_stored_snapshot_is_read_as_it_was_accepted() -> None:
    # Orders stored before amounts were checked stay readable: their tasks must not start failing.
    stored = _with(jpy_order(), items__0__unit_price="1200.5")
    assert OrderSnapshot.model_validate(stored).items[0].unit_price == Decimal("1200.5")


def test_an_unknown_currency_in_an_order_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        OrderSnapshot.model_validate(_with(jpy_order(), totals__currency="YEN"))
    assert "totals.currency: unknown currency 'YEN': use an ISO 4217 code" in describe_errors(caught.value)
