"""Order totals: subtotal, tax, shipping and total, in exact decimals.

Deliberately simple and documented rather than clever:

- subtotal = Σ quantity × unit price;
- tax = subtotal × the shipping country's standard VAT rate (``TAX_RATES``; 0 for countries
  not listed: prices elsewhere are taken as tax-inclusive or tax-exempt);
- shipping = a flat rate per currency (``SHIPPING``), free from ``FREE_SHIPPING_FROM``;
- every amount rounded to the currency's exponent (cents; none for JPY) with ROUND_HALF_UP,
  and total = subtotal + tax + shipping of the rounded parts, so the parts always add up.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

from handlers.contract import CURRENCY_EXPONENT, LineItem, Totals

TAX_RATES: dict[str, Decimal] = {
    "AT": Decimal("0.20"), "BE": Decimal("0.21"), "CH": Decimal("0.081"), "DE": Decimal("0.19"),
    "DK": Decimal("0.25"), "ES": Decimal("0.21"), "FR": Decimal("0.20"), "GB": Decimal("0.20"),
    "IE": Decimal("0.23"), "IT": Decimal("0.22"), "NL": Decimal("0.21"), "NO": Decimal("0.25"),
    "PL": Decimal("0.23"), "SE": Decimal("0.25"),
}
SHIPPING: dict[str, Decimal] = {
    "EUR": Decimal("4.90"), "USD": Decimal("5.99"), "GBP": Decimal("3.99"), "CHF": Decimal("7.00"),
    "SEK": Decimal("59"), "DKK": Decimal("39"), "NOK": Decimal("69"), "PLN": Decimal("19.99"),
    "CAD": Decimal("7.99"), "AUD": Decimal("9.95"), "JPY": Decimal("800"),
}
FREE_SHIPPING_FROM: dict[str, Decimal] = {"EUR": Decimal("50"), "USD": Decimal("50"), "GBP": Decimal("40"),
                                          "JPY": Decimal("7000")}


def round_money(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded half-up to the currency's minor unit."""
    return amount.quantize(Decimal(1).scaleb(-CURRENCY_EXPONENT[currency]), rounding=ROUND_HALF_UP)


def tax_rate(country: str) -> Decimal:
    """The standard rate applied to orders shipped to ``country`` (0 when not listed)."""
    return TAX_RATES.get(country, Decimal("0"))


def shipping_cost(subtotal: Decimal, currency: str) -> Decimal:
    """Flat shipping for the currency, free at or above its threshold."""
    free_from = FREE_SHIPPING_FROM.get(currency)
    if free_from is not None and subtotal >= free_from:
        return Decimal("0")
    return SHIPPING.get(currency, Decimal("0"))


def compute_totals(items: Iterable[LineItem], currency: str, country: str) -> Totals:
    """The order's money, rounded per the module docstring."""
    subtotal = round_money(sum((i.line_total for i in items), Decimal("0")), currency)
    tax = round_money(subtotal * tax_rate(country), currency)
    shipping = round_money(shipping_cost(subtotal, currency), currency)
    return Totals(currency=currency, subtotal=subtotal, tax=tax, shipping=shipping,
                  total=subtotal + tax + shipping)
