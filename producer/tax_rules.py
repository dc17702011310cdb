"""Tax and shipping rules as data: ``producer/data/tax_rates.toml``, loaded and checked once.

The file lists every country we ship to with its standard rate (and optional rates per
product tax category) and a flat shipping rate per currency. A country not in the file is
one we do not ship to: ``rate_for`` raises ``UnsupportedCountry`` instead of answering 0 %.
A malformed file raises ``TaxTableError`` naming the entry, at start-up.

Our checkout sells in ``CHECKOUT_CURRENCIES`` (each needs its shipping rate here); an order
scheduled through the library may be in any ISO 4217 currency (``handlers.currencies``).
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ordertasks.handlers.contract import COUNTRY_CODE, CURRENCY_EXPONENT
from ordertasks.handlers.errors import ConfigurationError, OrderTasksError

DEFAULT_TABLE = Path(__file__).resolve().parent / "data" / "tax_rates.toml"
STANDARD = "standard"
# The currencies our checkout prices, charges and ships in: a subset of every ISO 4217 code.
CHECKOUT_CURRENCIES = tuple(sorted(("AUD", "CAD", "CHF", "DKK", "EUR", "GBP", "JPY", "NOK", "PLN", "SEK", "USD")))


class TaxTableError(ConfigurationError, ValueError):
    """The tax table file is invalid; the message names the file and the entry."""


class UnsupportedCountry(OrderTasksError, ValueError):
    """Orders cannot ship to this country: it has no tax rule."""


@dataclass(frozen=True)
class CountryRule:
    """What an order shipped to one country pays in tax."""

    code: str
    name: str
    standard: Decimal
    categories: Mapping[str, Decimal] = field(default_factory=dict)
    note: str = ""

    def rate(self, tax_category: str = STANDARD) -> Decimal:
        """The rate for a product of ``tax_category`` (the standard rate when not listed)."""
        return self.categories.get(tax_category, self.standard)


@dataclass(frozen=True)
class ShippingRule:
    """Flat shipping in one currency, free at or above ``free_from`` (when set)."""

    flat: Decimal
    free_from: Decimal | None = None


@dataclass(frozen=True)
class TaxTable:
    """The whole file, checked."""

    countries: Mapping[str, CountryRule]
    shipping: Mapping[str, ShippingRule]
    source: str

    def rule_for(self, country: str) -> CountryRule:
        """The country's rule; ``UnsupportedCountry`` when we do not ship there."""
        rule = self.countries.get(country)
        if rule is None:
            raise UnsupportedCountry(f"we do not ship to {country!r}; supported countries: "
                                     f"{', '.join(sorted(self.countries))}")
        return rule


def _rate(value: Any, where: str) -> Decimal:
    try:
        rate = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        rate = None
    if rate is None or not rate.is_finite() or not 0 <= rate < 1:
        raise TaxTableError(f"{where}: {value!r} must be a decimal string from \"0\" to below \"1\" (\"0.19\" = 19 %)")
    return rate


def _amount(value: Any, currency: str, where: str) -> Decimal:
    try:
        amount = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or amount < 0 or \
            -amount.normalize().as_tuple().exponent > CURRENCY_EXPONENT[currency]:  # type: ignore[operator]
        raise TaxTableError(f"{where}: {value!r} must be a non-negative {currency} amount as a decimal string")
    return amount


def _country(code: str, raw: Mapping[str, Any], source: str) -> CountryRule:
    where = f"{source}: [countries.{code}]"
    if not COUNTRY_CODE.fullmatch(code):
        raise TaxTableError(f"{where}: the key must be a two-letter upper-case ISO 3166-1 code")
    if not isinstance(raw.get("name"), str) or STANDARD not in raw:
        raise TaxTableError(f"{where}: needs name = \"...\" and standard = \"0.xx\"")
    extra = {k: _rate(v, f"{where} {k}") for k, v in raw.items() if k not in ("name", STANDARD, "note")}
    return CountryRule(code, raw["name"], _rate(raw[STANDARD], f"{where} standard"), extra, str(raw.get("note", "")))


def _shipping(currency: str, raw: Mapping[str, Any], source: str) -> ShippingRule:
    where = f"{source}: [shipping.{currency}]"
    if currency not in CHECKOUT_CURRENCIES:
        raise TaxTableError(f"{where}: unknown currency; use one of {', '.join(CHECKOUT_CURRENCIES)}")
    if "flat" not in raw or set(raw) - {"flat", "free_from"}:
        raise TaxTableError(f"{where}: needs flat = \"4.90\" and at most free_from = \"50\"")
    free_from = raw.get("free_from")
    return ShippingRule(_amount(raw["flat"], currency, f"{where} flat"),
                        None if free_from is None else _amount(free_from, currency, f"{where} free_from"))


def load_tax_table(path: Path = DEFAULT_TABLE) -> TaxTable:
    """Read and check the tax table; ``TaxTableError`` names what is wrong."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TaxTableError(f"{path}: cannot be read as TOML: {exc}") from exc
    countries = {code: _country(code, body, str(path)) for code, body in raw.get("countries", {}).items()}
    shipping = {cur: _shipping(cur, body, str(path)) for cur, body in raw.get("shipping", {}).items()}
    if not countries:
        raise TaxTableError(f"{path}: lists no [countries.XX]; the checkout could ship nowhere")
    missing = sorted(set(CHECKOUT_CURRENCIES) - set(shipping))
    if missing:
        raise TaxTableError(f"{path}: no [shipping.XXX] for {', '.join(missing)}; every currency needs one")
    return TaxTable(countries, shipping, str(path))


@functools.cache
def default_table() -> TaxTable:
    """The packaged table, loaded once per process."""
    return load_tax_table(DEFAULT_TABLE)
