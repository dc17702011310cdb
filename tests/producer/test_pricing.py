"""Totals: tax by country, flat shipping, half-up rounding to the currency's exponent."""

from __future__ import annotations

from decimal import Decimal

from ordertasks.handlers.contract import LineItem
from ordertasks.producer.pricing import compute_totals, round_money


def _items(*lines: tuple[int, str]) -> list[LineItem]:
    return [LineItem(sku=f"S{i}", name="x", quantity=q, unit_price=Decimal(p)) for i, (q, p) in enumerate(lines)]


def test_german_order_with_shipping() -> None:
    totals = compute_totals(_items((2, "9.50"), (1, "4.25")), "EUR", "DE")
    assert (totals.subtotal, totals.tax, totals.shipping, totals.total) == \
        (Decimal("23.25"), Decimal("4.42"), Decimal("4.90"), Decimal("32.57"))


def test_us_sales_tax_is_out_of_scope_and_shipping_is_free_from_threshold() -> None:
    totals = compute_totals(_items((1, "60.00")), "USD", "US")
    assert (totals.tax, totals.shipping, totals.total) == (Decimal("0.00"), Decimal("0.00"), Decimal("60.00"))


def test_half_up_rounding_and_yen_without_minor_units() -> None:
    assert round_money(Decimal("0.125"), "EUR") == Decimal("0.13")
    assert round_money(Decimal("0.124"), "EUR") == Decimal("0.12")
    totals = compute_totals(_items((3, "333")), "JPY", "JP")
    assert (totals.subtotal, totals.tax, totals.shipping, totals.total) == \
        (Decimal("999"), Decimal("100"), Decimal("800"), Decimal("1899"))   # 99.9 rounds half-up to 100
    assert str(totals.total) == "1899"


def test_parts_always_add_up() -> None:
    totals = compute_totals(_items((7, "0.3333"), (3, "1.0049")), "EUR", "NL")
    assert totals.subtotal + totals.tax + totals.shipping == totals.total
    assert totals.subtotal == Decimal("5.35")
