"""Order totals: subtotal, tax, shipping and total, in exact decimals.

Deliberately simple and documented rather than clever:

- subtotal = Σ quantity × unit price (the price book's);
- tax = Σ line total × the shipping country's rate for the line's tax category (the
  standard rate unless the country lists the category), from the tax table
  (``producer/data/tax_rates.toml``, see ``producer.tax_rules``); a country the table does
  not list raises ``UnsupportedCountry``: we never charge 0 % by omission;
- shipping = the currency's flat rate from the same table, free at or above its threshold;
- every amount rounded to the currency's exponent (cents; none for JPY) with ROUND_HALF_UP,
  and total = subtotal + tax + shipping of the rounded parts, so the parts always add up and
  the amount charged is exactly the total shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal

from ordertasks.handlers.contract import CURRENCY_EXPONENT, LineItem, Totals
from ordertasks.producer.tax_rules import STANDARD, TaxTable, UnsupportedCountry, default_table

__all__ = ["UnsupportedCountry", "compute_totals", "round_money", "shipping_cost", "tax_rate"]


def round_money(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded half-up to the currency's minor unit."""
    return amount.quantize(Decimal(1).scaleb(-CURRENCY_EXPONENT[currency]), rounding=ROUND_HALF_UP)


def tax_rate(country: str, table: TaxTable | None = None) -> Decimal:
    """The standard rate of ``country``; ``UnsupportedCountry`` when we do not ship there."""
    return (table or default_table()).rule_for(country).standard


def shipping_cost(subtotal: Decimal, currency: str, table: TaxTable | None = None) -> Decimal:
    """Flat shipping for the currency, free at or above its threshold."""
    rule = (table or default_table()).shipping[currency]
    if rule.free_from is not None and subtotal >= rule.free_from:
        return Decimal("0")
    return rule.flat


def compute_totals(items: Iterable[LineItem], currency: str, country: str, *, table: TaxTable | None = None,
                   tax_categories: Mapping[str, str] | None = None) -> Totals:
    """The order's money, rounded per the module docstring.

    ``tax_categories`` maps a SKU to its price-book tax category (``standard`` when absent).
    """
    lines = list(items)
    rule = (table or default_table()).rule_for(country)
    categories = tax_categories or {}
    subtotal = round_money(sum((i.line_total for i in lines), Decimal("0")), currency)
    tax = round_money(sum((i.line_total * rule.rate(categories.get(i.sku, STANDARD)) for i in lines), Decimal("0")),
                      currency)
    shipping = round_money(shipping_cost(subtotal, currency, table), currency)
    return Totals(currency=currency, subtotal=subtotal, tax=tax, shipping=shipping,
                  total=subtotal + tax + shipping)
