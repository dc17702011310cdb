"""The task contract shared by the producer and the handler.

A task body is JSON ``{"kind": ..., "v": 2, "order_id": ...}``: a **reference**. The handler
reads the stored order snapshot by id and projects each kind's data from it (``handlers.kind``),
so queues hold no personal data and a forged body cannot cause effects for an order that was
never placed. Money is ``Decimal`` in code, decimal strings in JSON, never ``float``.

``parse_envelope(body)`` turns bytes into an ``Envelope`` or raises ``InvalidPayload`` with a
message that says which field is wrong.

The order snapshot has a typed core (``placed_at``, ``customer``, ``items``, ``totals``) that
every kind may rely on, an optional ``shipping_address`` (a kind that ships declares
``needs_shipping``, ``handlers.kind``) and ``metadata``, the shop's own JSON values
(``handlers.order_metadata``). A field the snapshot does not have is refused, naming it and
where its data belongs (``unknown field 'currency': ... totals.currency``). Currencies are
every ISO 4217 code with its minor units (``handlers.currencies``); ``new_order_snapshot``,
used for an order being scheduled, also refuses an amount with more decimals than its currency
has, while a stored snapshot is read as it was accepted.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, field_validator,
                      model_validator)

# The money helpers lived here before handlers.currencies: re-exported under the old names.
from ordertasks.handlers.currencies import CURRENCY_EXPONENT as CURRENCY_EXPONENT
from ordertasks.handlers.currencies import CURRENCY_SYMBOL as CURRENCY_SYMBOL
from ordertasks.handlers.currencies import currency_problem, excess_decimals
from ordertasks.handlers.currencies import format_money as format_money
from ordertasks.handlers.currencies import minor_units as minor_units
from ordertasks.handlers.errors import InvalidPayload
from ordertasks.handlers.order_metadata import check_metadata

CONTRACT_VERSION = 2
READABLE_VERSIONS = (1, 2)
KIND_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
ORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
COUNTRY_CODE = re.compile(r"^[A-Z]{2}$")          # ISO 3166-1 alpha-2, upper case
SKU = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
ORDER_ID_RULE = "1-64 characters of A-Z a-z 0-9 _ -, starting with a letter or digit"
NEW_ORDER = {"new_order": True}   # validation context of an order being scheduled (amounts checked)
METADATA_HINT = 'put the shop\'s own data under "metadata"'
# Where the data of a top-level field the snapshot does not have belongs, for the error message.
BELONGS_IN = {
    **{name: f"totals.{name}" for name in ("currency", "subtotal", "tax", "shipping", "total")},
    "grand_total": "totals.total", "amount": "totals.total", "shipping_cost": "totals.shipping",
    "email": "customer.email", "name": "customer.name",
    "customer_email": "customer.email", "customer_name": "customer.name",
    **{name: f"shipping_address.{name}" for name in ("line1", "line2", "city", "postal_code", "country")},
    "address": "shipping_address", "ship_to": "shipping_address", "shipping_addr": "shipping_address",
    "lines": "items", "line_items": "items", "products": "items", "cart": "items",
    "id": "order_id", "created_at": "placed_at", "paid_at": "placed_at", "date": "placed_at",
}

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
        problem = currency_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    def amounts(self) -> dict[str, Decimal]:
        """Each amount by its place in the snapshot (``totals.tax``)."""
        return {f"totals.{name}": getattr(self, name) for name in ("subtotal", "tax", "shipping", "total")}


Metadata = Annotated[dict[str, Any], BeforeValidator(check_metadata)]


class OrderSnapshot(_Model):
    """Everything any kind may need, as the producer recorded it when the order was paid.

    ``shipping_address`` is ``None`` for an order that ships nothing (a kind that ships says
    ``needs_shipping``); ``metadata`` is the shop's own JSON (``handlers.order_metadata``).
    """

    placed_at: datetime
    customer: Customer
    shipping_address: Address | None = None
    items: tuple[LineItem, ...] = Field(min_length=1, max_length=200)
    totals: Totals
    tax_rate: Decimal = Decimal("0")
    # Paid through the local test gateway in a cloud test deployment: no money was taken.
    test: bool = False
    metadata: Metadata = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(str(key) for key in data if key not in cls.model_fields)
            if unknown:
                raise ValueError(unknown_fields_message(unknown))
        return data

    def __hash__(self) -> int:
        # Hashable as before metadata (a dict) came: equal snapshots have equal typed cores.
        return hash((self.placed_at, self.customer, self.shipping_address, self.items, self.totals, self.tax_rate,
                     self.test))

    @model_validator(mode="after")
    def _amounts_fit_currency(self, info: ValidationInfo) -> "OrderSnapshot":
        # Only for an order being scheduled: a stored snapshot is read as it was accepted.
        if info.context and info.context.get("new_order"):
            _check_amounts(self)
        return self


def _check_amounts(order: OrderSnapshot) -> None:
    currency = order.totals.currency
    amounts = {**order.totals.amounts(),
               **{f"items.{n}.unit_price": item.unit_price for n, item in enumerate(order.items)}}
    for place, amount in amounts.items():
        problem = excess_decimals(amount, currency)
        if problem:
            raise ValueError(f"{place}: {problem}")


def unknown_fields_message(unknown: list[str]) -> str:
    """``unknown field 'currency': put the shop's own data under "metadata"; the currency
    belongs in totals.currency``: what the error says, with where each known mistake belongs."""
    names = ", ".join(repr(name) for name in unknown)
    hints = [f"the {name} belongs in {BELONGS_IN[name]}" for name in unknown if name in BELONGS_IN]
    return "; ".join([f"unknown field{'s' if len(unknown) > 1 else ''} {names}: {METADATA_HINT}", *hints])


def new_order_snapshot(raw: Mapping[str, Any]) -> OrderSnapshot:
    """An order being scheduled, validated: the model's checks, and every amount against its
    currency's minor units (``ValidationError`` otherwise; ``describe_errors`` reads it)."""
    return OrderSnapshot.model_validate(raw, context=NEW_ORDER)


def describe_errors(exc: ValidationError, limit: int = 5) -> str:
    """The first ``limit`` problems of ``exc`` as ``field: what is wrong``, one sentence each."""
    return "; ".join(_describe(error) for error in exc.errors(include_url=False)[:limit])


def _describe(error: Any) -> str:
    place = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = f"is not a field of the order; {METADATA_HINT}"
    return f"{place}: {message}" if place else message


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
