"""Every ISO 4217 currency and its minor units, as data; amounts checked and shown with them.

The table is ISO 4217 list one ("current currency & funds", maintained by SIX on behalf of
ISO), the publication of 2026-01-01: every code that has a numeric minor unit, 165 of them.
The codes list one gives "N.A." (gold XAU, silver XAG, SDR XDR, the test code XTS, "no
currency" XXX, the bond-market units XBA…XBD, XSU, XUA) are not in it: nothing is priced in
them. To update it, take the new list one and rewrite ``_CODES_BY_MINOR_UNITS`` (a withdrawn
code leaves, a new one arrives; ``tests/effects/test_currencies.py`` pins well-known ones).

``minor_units(amount, currency)`` is the amount in the currency's smallest unit (cents, yen,
fils), ``format_money`` shows it with exactly the currency's decimals (``¥1,235``,
``1,234.500 KWD``), and ``excess_decimals`` tells when an amount has more decimals than its
currency allows (``"1200.5"`` yen), so orders are refused rather than silently rounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType

ISO_4217_PUBLISHED = "2026-01-01"

_CODES_BY_MINOR_UNITS = {
    0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
    2: "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD "
       "CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS "
       "GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD "
       "LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB "
       "PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP "
       "SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XAD XCD XCG YER ZAR ZMW "
       "ZWG",
    3: "BHD IQD JOD KWD LYD OMR TND",
    4: "CLF UYW",
}

CURRENCY_EXPONENT: Mapping[str, int] = MappingProxyType(
    {code: units for units, codes in _CODES_BY_MINOR_UNITS.items() for code in codes.split()})
CURRENCY_SYMBOL: Mapping[str, str] = MappingProxyType({"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"})
UNKNOWN_CURRENCY = "use an ISO 4217 code in upper case, such as EUR, USD, JPY or KWD"


def currency_problem(currency: str) -> str | None:
    """Why ``currency`` is not one of the table's codes, or ``None`` when it is."""
    if currency in CURRENCY_EXPONENT:
        return None
    return f"unknown currency {currency[:10]!r}: {UNKNOWN_CURRENCY}"


def decimals(amount: Decimal) -> int:
    """How many decimals ``amount`` really has: ``"19.50"`` has 1, ``"1200"`` and ``"1E+3"`` none."""
    exponent = amount.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def excess_decimals(amount: Decimal, currency: str) -> str | None:
    """Why ``amount`` cannot be an amount of ``currency`` (too many decimals), or ``None``."""
    allowed = CURRENCY_EXPONENT[currency]
    if decimals(amount) <= allowed:
        return None
    unit = "no decimals" if allowed == 0 else f"at most {allowed} decimal{'s' if allowed > 1 else ''}"
    return f"{amount} has more decimals than {currency} has: {currency} amounts have {unit}"


def minor_units(amount: Decimal, currency: str) -> int:
    """Amount in the currency's minor unit (cents, fils; yen are their own), for exact integer counters."""
    return int((amount * (10 ** CURRENCY_EXPONENT.get(currency, 2))).to_integral_value())


def format_money(amount: Decimal, currency: str) -> str:
    """``€1,234.50`` / ``¥1,235`` / ``1,234.500 KWD``: grouped, with the currency's decimals."""
    exponent = CURRENCY_EXPONENT.get(currency, 2)
    quantum = Decimal(1).scaleb(-exponent)
    text = f"{amount.quantize(quantum):,.{exponent}f}"
    symbol = CURRENCY_SYMBOL.get(currency)
    return f"{symbol}{text}" if symbol else f"{text} {currency}"
