"""The body of ``POST /api/checkout`` and how its validation errors read.

Validation errors become one ``{"field", "message"}`` entry per bad field, in dotted paths
(``items.0.unit_price``), each message saying what to send instead.  Money arrives as a
decimal *string* (``"19.99"``): a JSON number would pass through binary floating point.

The body has no ``order_id``: the checkout issues every id (``ord_`` + 100 random bits), and
one sent anyway is refused (400 naming ``order_id``) rather than ignored, so a client that
relied on choosing its id learns it at once instead of losing track of its orders. A chosen
id could be guessable (``A1001``, ``A1002``), and an order's id is its public view's only
credential. A shop that keeps its own ids schedules through the library (``OrderTasks``).

``shipping_address`` stays required here, though the order snapshot may lack one: this
checkout taxes by the shipping country and charges its flat shipping rate, so an order without
an address has no tax rule. ``metadata`` (the shop's own JSON, bounded as in
``handlers.order_metadata``) is kept on the order for its kinds. The currency is one of
``CHECKOUT_CURRENCIES`` (those the tax table prices shipping in).
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr,
                      ValidationError, WithJsonSchema, field_validator, model_validator)

from ordertasks.handlers.contract import COUNTRY_CODE, CURRENCY_EXPONENT, Address, Customer, Metadata
from ordertasks.handlers.mailheaders import UNSAFE_CATEGORIES, display_name_problem, renderable_address
from ordertasks.producer.tax_rules import CHECKOUT_CURRENCIES

MAX_UNIT_PRICE = Decimal("1000000")
DECIMAL = re.compile(r"^-?[0-9]{1,12}(\.[0-9]{1,4})?$")
CHOSEN_ID = ("order_id: is chosen by the checkout, not the client; remove it (the answer carries the new "
             "order's id; to use your own ids, schedule orders through the library, OrderTasks.schedule)")


def _plain_text(value: str) -> str:
    """Refuse control and line-break characters and lone surrogates: they break headers, PDFs and storage."""
    for char in value:
        if unicodedata.category(char) in UNSAFE_CATEGORIES:
            raise ValueError("must not contain control characters, line breaks or invalid unicode")
    return value


def _display_name(value: str) -> str:
    """A person's name as it will appear in an email header (see ``handlers.mailheaders``)."""
    problem = display_name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _email_address(value: str) -> str:
    """Syntax-checked (no DNS), normalised address the handler can always send to.

    Internationalised domains become their ASCII (IDNA) form; non-ASCII local parts, quoted
    local parts and IP-literal domains are refused: many relays and mailboxes cannot take them.
    """
    try:
        checked = validate_email(value, check_deliverability=False, allow_smtputf8=False,
                                 allow_quoted_local=False, allow_domain_literal=False)
        return renderable_address(checked.ascii_email or checked.normalized).addr_spec
    except (EmailNotValidError, ValueError) as exc:
        raise ValueError(f"must be an email address such as ada@example.com ({exc})") from exc


Text = Annotated[StrictStr, AfterValidator(_plain_text)]
PersonName = Annotated[Text, AfterValidator(_display_name)]


def _decimal_string(value: Any) -> Decimal:
    if not isinstance(value, str):
        raise ValueError('must be a decimal string such as "19.99" (not a JSON number)')
    if not DECIMAL.match(value.strip()):
        raise ValueError('must be a decimal string such as "19.99" with at most 4 decimal places')
    try:
        amount = Decimal(value.strip())
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only valid decimals
        raise ValueError('must be a decimal string such as "19.99"') from exc
    if amount < 0:
        raise ValueError("must not be negative")
    if amount > MAX_UNIT_PRICE:
        raise ValueError(f"must be at most {MAX_UNIT_PRICE}")
    return amount


Price = Annotated[Decimal, BeforeValidator(_decimal_string),
                  WithJsonSchema({"type": "string", "pattern": r"^[0-9]{1,12}(\.[0-9]{1,4})?$", "examples": ["19.99"]})]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class CustomerIn(_Body):
    """Who is ordering."""

    name: PersonName = Field(min_length=1, max_length=200)
    email: Annotated[Text, AfterValidator(_email_address)] = Field(
        max_length=254, description="receives the confirmation email; stored normalised (IDNA domain)")


class AddressIn(_Body):
    """Where the order ships."""

    name: PersonName = Field(min_length=1, max_length=200)
    line1: Text = Field(min_length=1, max_length=200)
    line2: Text | None = Field(default=None, max_length=200)
    city: Text = Field(min_length=1, max_length=100)
    postal_code: Text = Field(min_length=1, max_length=20)
    country: Text = Field(description="ISO 3166-1 alpha-2, upper case (DE, FR, US…)",
                          json_schema_extra={"pattern": COUNTRY_CODE.pattern})

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        if not COUNTRY_CODE.fullmatch(value):
            raise ValueError("must be a two-letter upper-case country code such as DE")
        return value


class ItemIn(_Body):
    """One line of the cart: a SKU of the price book and how many.

    ``name`` and ``unit_price`` are optional echoes of what the client showed: the name is
    ignored (the book's is used) and a price different from the book's is answered 409.
    """

    sku: Text = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    name: Text | None = Field(default=None, min_length=1, max_length=200)
    quantity: StrictInt = Field(gt=0, le=10_000)
    unit_price: Price | None = Field(default=None, description="the price the client showed; must equal the book's")


def _known_currency(value: str) -> str:
    if value not in CHECKOUT_CURRENCIES:
        raise ValueError(f"unknown currency; use one of {', '.join(CHECKOUT_CURRENCIES)}")
    return value


class CheckoutRequest(_Body):
    """``POST /api/checkout``: the cart, who pays, where it goes."""

    customer: CustomerIn
    shipping_address: AddressIn
    items: list[ItemIn] = Field(min_length=1, max_length=200)
    currency: Annotated[Text, AfterValidator(_known_currency)] = Field(
        json_schema_extra={"enum": list(CHECKOUT_CURRENCIES)})
    payment_token: Text = Field(min_length=1, max_length=200, examples=["tok_visa"])
    metadata: Metadata = Field(default_factory=dict, description=(
        "the shop's own JSON values, kept on the order for its task kinds: at most 50 keys, 16 KiB as JSON"))

    @model_validator(mode="before")
    @classmethod
    def _no_chosen_id(cls, data: Any) -> Any:
        # Named before "is not a known field" so the message says why and what to do instead.
        if isinstance(data, dict) and "order_id" in data:
            raise ValueError(CHOSEN_ID)
        return data

    @model_validator(mode="after")
    def _amounts_fit_currency(self) -> "CheckoutRequest":
        exponent = CURRENCY_EXPONENT[self.currency]
        for item in self.items:
            if item.unit_price is None:
                continue
            if -item.unit_price.normalize().as_tuple().exponent > exponent:  # type: ignore[operator]
                raise ValueError(f"items: unit prices in {self.currency} have at most {exponent} decimal places")
        return self

    def contract_customer(self) -> Customer:
        """The customer as the task contract's model."""
        return Customer(**self.customer.model_dump())

    def contract_address(self) -> Address:
        """The shipping address as the task contract's model."""
        return Address(**self.shipping_address.model_dump())


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """One ``{"field", "message"}`` per bad field (the first problem found for each)."""
    seen: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        field, message = _describe(error)
        seen.setdefault(field, message)
    return [{"field": f, "message": m} for f, m in seen.items()]


def _describe(error: Any) -> tuple[str, str]:
    loc = [str(p) for p in error["loc"] if not str(p).startswith("function-")]
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "value_error" and not loc and ": " in message:
        field, _, message = message.partition(": ")  # model-level checks name their field
        return field, message
    return ".".join(loc) or "body", _friendlier(error["type"], error.get("ctx") or {}, message)


_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field; remove it",
    "string_pattern_mismatch": "may contain only letters, digits, '.', '_' and '-'",
    "string_type": "must be a string",
    "string_unicode": "must be valid unicode text",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "greater_than": "must be greater than {gt}",
    "less_than_equal": "must be at most {le}",
    "too_short": "must contain at least {min_length} item(s)",
    "too_long": "must contain at most {max_length} items",
    "model_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "list_type": "must be a JSON array",
}


def _friendlier(kind: str, ctx: dict[str, Any], message: str) -> str:
    template = _MESSAGES.get(kind)
    if template is None:
        return message
    try:
        return template.format(**ctx)
    except (KeyError, IndexError):
        return message
