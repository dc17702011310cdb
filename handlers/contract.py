"""The task contract shared by the producer and the handler.

A task body is JSON ``{"kind": ..., "v": 2, "order_id": ...}``: a **reference**. The handler
reads the stored order snapshot by id and projects each kind's data from it (``handlers.kind``),
so queues hold no personal data and a forged body cannot cause effects for an order that was
never placed. Money is ``Decimal`` in code, decimal strings in JSON, never ``float``.

``parse_envelope(body)`` turns bytes into an ``Envelope`` or raises ``InvalidPayload`` with a
message that says which field is wrong.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ordertasks.handlers.errors import InvalidPayload

CONTRACT_VERSION = 2
READABLE_VERSIONS = (1, 2)
KIND_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
ORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
COUNTRY_CODE = re.compile(r"^[A-Z]{2}$")          # ISO 3166-1 alpha-2, upper case
SKU = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
ORDER_ID_RULE = "1-64 characters of A-Z a-z 0-9 _ -, starting with a letter or digit"
CURRENCY_EXPONENT = {"EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "SEK": 2, "DKK": 2, "NOK": 2,
                     "PLN": 2, "CAD": 2, "AUD": 2, "JPY": 0}
CURRENCY_SYMBOL = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}



def valid_order_id(order_id: str) -> bool:
    """True when ``order_id`` is safe in task names, document ids and file names."""
    return bool(ORDER_ID.fullmatch(order_id)) and not order_id.startswith("__")


Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4)]


class ContractModel(BaseModel):
    """Base of every model of the contract: unknown fields refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


_Model = ContractModel


class Customer(_Model):
    """Who ordered; the email receives the confirmation."""

    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


class Address(_Model):
    """A postal address (shipping and billing)."""

    name: str = Field(min_length=1, max_length=200)
    line1: str = Field(min_length=1, max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)
    country: str = Field(min_length=2, max_length=2, pattern=COUNTRY_CODE.pattern)


class LineItem(_Model):
    """One line of an order."""

    sku: str = Field(min_length=1, max_length=64, pattern=SKU.pattern)
    name: str = Field(min_length=1, max_length=200)
    quantity: int = Field(gt=0, le=10_000)
    unit_price: Money

    @property
    def line_total(self) -> Decimal:
        """quantity × unit price."""
        return self.unit_price * self.quantity


class Totals(_Model):
    """The money of an order, computed once by the producer."""

    currency: str
    subtotal: Money
    tax: Money
    shipping: Money
    total: Money

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value not in CURRENCY_EXPONENT:
            raise ValueError(f"unknown currency {value!r}; use one of {sorted(CURRENCY_EXPONENT)}")
        return value


class OrderSnapshot(_Model):
    """Everything any kind may need, as the producer recorded it when the order was paid."""

    placed_at: datetime
    customer: Customer
    shipping_address: Address
    items: tuple[LineItem, ...] = Field(min_length=1, max_length=200)
    totals: Totals
    tax_rate: Decimal = Decimal("0")
    # Paid through the local test gateway in a cloud test deployment: no money was taken.
    test: bool = False


@dataclass(frozen=True)
class Task:
    """A task to perform: the kind, the order id, the kind's data (projected from ``order``)."""

    kind: str
    order_id: str
    data: Any
    raw: dict[str, Any]
    order: OrderSnapshot | None = None

    @property
    def effect_key(self) -> str:
        """The idempotency key: ``{order_id}:{kind}`` — not the Cloud Tasks task name."""
        return effect_key(self.order_id, self.kind)


def effect_key(order_id: str, kind: str) -> str:
    """``{order_id}:{kind}``: idempotency record and failed-task document id."""
    return f"{order_id}:{kind}"


@dataclass(frozen=True)
class Envelope:
    """A task body as read: which kind, for which order (a reference, not the order itself)."""

    kind: str
    order_id: str
    version: int
    raw: dict[str, Any]


def envelope(kind: str, order_id: str) -> dict[str, Any]:
    """The JSON envelope the producer puts in a task body: a reference to the stored order."""
    return {"kind": kind, "v": CONTRACT_VERSION, "order_id": order_id}


def encode(kind: str, order_id: str) -> bytes:
    """Task body bytes (compact JSON, sorted keys)."""
    return json.dumps(envelope(kind, order_id), separators=(",", ":"), sort_keys=True).encode()


def parse_envelope(body: bytes) -> Envelope:
    """Read a task body; raise ``InvalidPayload`` saying which field is wrong.

    Version 2 bodies are ``{"kind", "v": 2, "order_id"}``. Version 1 bodies (inline ``data``,
    still in queues at upgrade time) are read the same way: their ``data`` is ignored and the
    kind's data comes from the stored order, so an old body can no longer carry what is sent.
    """
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidPayload(f"task body is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidPayload("task body must be a JSON object with kind, v and order_id")
    missing = [k for k in ("kind", "v", "order_id") if k not in raw]
    if missing:
        raise InvalidPayload(f"task body is missing {', '.join(missing)}")
    kind, order_id, version = raw["kind"], raw["order_id"], raw["v"]
    if not isinstance(kind, str) or not isinstance(order_id, str):
        raise InvalidPayload("kind and order_id must be strings")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise InvalidPayload(f"unsupported contract version v={str(version)[:20]!r}; this handler reads v=1 and v=2")
    if not valid_order_id(order_id):
        raise InvalidPayload(f"order_id {order_id[:80]!r} is invalid: {ORDER_ID_RULE}")
    return Envelope(kind=kind, order_id=order_id, version=version, raw=raw)


def salvage_ids(body: bytes) -> tuple[str, str]:
    """Best-effort (order_id, kind) of a body that failed to parse, safe as a document id.

    Used to name the failed-task record of a rejected task; falls back to a hash of the body.
    """
    try:
        raw = json.loads(body)
        order_id, kind = raw.get("order_id"), raw.get("kind")
    except (ValueError, UnicodeDecodeError, AttributeError):
        order_id = kind = None
    digest = hashlib.sha256(body).hexdigest()[:16]
    safe_order = order_id if isinstance(order_id, str) and valid_order_id(order_id) else f"invalid-{digest}"
    safe_kind = kind if isinstance(kind, str) and KIND_NAME.fullmatch(kind) else "unknown"
    return safe_order, safe_kind


def minor_units(amount: Decimal, currency: str) -> int:
    """Amount in the currency's minor unit (cents), for exact integer counters."""
    return int((amount * (10 ** CURRENCY_EXPONENT.get(currency, 2))).to_integral_value())


def format_money(amount: Decimal, currency: str) -> str:
    """``€1,234.50`` / ``¥1,235`` / ``1,234.50 CHF``: grouped, rounded to the currency's exponent."""
    exponent = CURRENCY_EXPONENT.get(currency, 2)
    quantum = Decimal(1).scaleb(-exponent)
    text = f"{amount.quantize(quantum):,.{exponent}f}"
    symbol = CURRENCY_SYMBOL.get(currency)
    return f"{symbol}{text}" if symbol else f"{text} {currency}"
