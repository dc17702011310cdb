"""The task contract shared by the producer and the handler.

A task body is JSON ``{"kind": ..., "v": 1, "order_id": ..., "data": {...}}`` where ``data``
is the part of the order snapshot that the kind needs (never secrets or card data).
Money travels as decimal strings and is ``Decimal`` in code, never ``float``.

``parse_task(body)`` turns bytes into a ``Task`` or raises ``InvalidPayload`` /
``UnknownTaskKind`` with a message that says which field is wrong.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from handlers.errors import InvalidPayload, UnknownTaskKind

CONTRACT_VERSION = 1
ORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ORDER_ID_RULE = "1-64 characters of A-Z a-z 0-9 _ -, starting with a letter or digit"
CURRENCY_EXPONENT = {"EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "SEK": 2, "DKK": 2, "NOK": 2,
                     "PLN": 2, "CAD": 2, "AUD": 2, "JPY": 0}
CURRENCY_SYMBOL = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}

SEND_CONFIRMATION_EMAIL = "send_confirmation_email"
RECORD_ANALYTICS = "record_analytics"
GENERATE_INVOICE = "generate_invoice"
NOTIFY_WAREHOUSE = "notify_warehouse"
SEND_FOLLOWUP_EMAIL = "send_followup_email"
REQUEST_REVIEW = "request_review"
EMAIL_KINDS = (SEND_CONFIRMATION_EMAIL, SEND_FOLLOWUP_EMAIL, REQUEST_REVIEW)


def valid_order_id(order_id: str) -> bool:
    """True when ``order_id`` is safe in task names, document ids and file names."""
    return bool(ORDER_ID.fullmatch(order_id)) and not order_id.startswith("__")


Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


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
    country: str = Field(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$")


class LineItem(_Model):
    """One line of an order."""

    sku: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
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


class EmailData(_Model):
    """What an order email shows."""

    placed_at: datetime
    customer: Customer
    items: tuple[LineItem, ...] = Field(min_length=1, max_length=200)
    totals: Totals


class AnalyticsItem(_Model):
    """A line as analytics sees it: no names, no customer."""

    sku: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    quantity: int = Field(gt=0, le=10_000)
    unit_price: Money


class AnalyticsData(_Model):
    """What the analytics fact needs: day, money, units per SKU. No personal data."""

    placed_at: datetime
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    total: Money
    items: tuple[AnalyticsItem, ...] = Field(min_length=1, max_length=200)


class WarehouseItem(_Model):
    """A line to pick and pack."""

    sku: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    name: str = Field(min_length=1, max_length=200)
    quantity: int = Field(gt=0, le=10_000)


class WarehouseData(_Model):
    """What the warehouse needs to ship."""

    placed_at: datetime
    shipping_address: Address
    items: tuple[WarehouseItem, ...] = Field(min_length=1, max_length=200)


DATA_MODELS: dict[str, type[_Model]] = {
    SEND_CONFIRMATION_EMAIL: EmailData,
    SEND_FOLLOWUP_EMAIL: EmailData,
    REQUEST_REVIEW: EmailData,
    RECORD_ANALYTICS: AnalyticsData,
    GENERATE_INVOICE: OrderSnapshot,
    NOTIFY_WAREHOUSE: WarehouseData,
}
KINDS = tuple(DATA_MODELS)


def data_for(kind: str, order: OrderSnapshot) -> dict[str, Any]:
    """Project the order snapshot onto what ``kind`` needs, as JSON-ready data."""
    full = order.model_dump(mode="json")
    if kind in EMAIL_KINDS:
        return {k: full[k] for k in ("placed_at", "customer", "items", "totals")}
    if kind == RECORD_ANALYTICS:
        items = [{k: i[k] for k in ("sku", "quantity", "unit_price")} for i in full["items"]]
        return {"placed_at": full["placed_at"], "currency": full["totals"]["currency"],
                "total": full["totals"]["total"], "items": items}
    if kind == NOTIFY_WAREHOUSE:
        items = [{k: i[k] for k in ("sku", "name", "quantity")} for i in full["items"]]
        return {"placed_at": full["placed_at"], "shipping_address": full["shipping_address"], "items": items}
    if kind == GENERATE_INVOICE:
        return full
    raise UnknownTaskKind(f"unknown task kind {kind!r}; known kinds: {', '.join(KINDS)}")


@dataclass(frozen=True)
class Task:
    """A parsed, validated task: the kind, the order and the kind's data model."""

    kind: str
    order_id: str
    data: Any
    raw: dict[str, Any]

    @property
    def effect_key(self) -> str:
        """The idempotency key: ``{order_id}:{kind}`` — not the Cloud Tasks task name."""
        return effect_key(self.order_id, self.kind)


def effect_key(order_id: str, kind: str) -> str:
    """``{order_id}:{kind}``: idempotency record and failed-task document id."""
    return f"{order_id}:{kind}"


def envelope(kind: str, order_id: str, order: OrderSnapshot) -> dict[str, Any]:
    """The JSON envelope the producer puts in a task body."""
    return {"kind": kind, "v": CONTRACT_VERSION, "order_id": order_id, "data": data_for(kind, order)}


def encode(kind: str, order_id: str, order: OrderSnapshot) -> bytes:
    """Task body bytes (compact JSON, sorted keys so equal orders give equal bodies)."""
    return json.dumps(envelope(kind, order_id, order), separators=(",", ":"), sort_keys=True).encode()


def _field_errors(exc: ValidationError) -> str:
    parts = [f"data.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
    return "; ".join(parts)


def _envelope_fields(raw: Any) -> tuple[str, str, Any]:
    if not isinstance(raw, dict):
        raise InvalidPayload("task body must be a JSON object with kind, v, order_id and data")
    missing = [k for k in ("kind", "v", "order_id", "data") if k not in raw]
    if missing:
        raise InvalidPayload(f"task body is missing {', '.join(missing)}")
    kind, order_id, version = raw["kind"], raw["order_id"], raw["v"]
    if not isinstance(kind, str) or not isinstance(order_id, str):
        raise InvalidPayload("kind and order_id must be strings")
    if version != CONTRACT_VERSION:
        raise InvalidPayload(f"unsupported contract version v={version!r}; this handler reads v={CONTRACT_VERSION}")
    if not valid_order_id(order_id):
        raise InvalidPayload(f"order_id {order_id[:80]!r} is invalid: {ORDER_ID_RULE}")
    return kind, order_id, raw["data"]


def parse_task(body: bytes) -> Task:
    """Validate a task body; raise ``InvalidPayload`` or ``UnknownTaskKind`` saying why."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidPayload(f"task body is not valid JSON: {exc}") from exc
    kind, order_id, data = _envelope_fields(raw)
    model = DATA_MODELS.get(kind)
    if model is None:
        raise UnknownTaskKind(f"unknown task kind {kind[:80]!r}; known kinds: {', '.join(KINDS)}")
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        raise InvalidPayload(f"invalid {kind} data: {_field_errors(exc)}") from exc
    return Task(kind=kind, order_id=order_id, data=parsed, raw=raw)


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
    safe_kind = kind if isinstance(kind, str) and kind in DATA_MODELS else "unknown"
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
