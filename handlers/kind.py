"""A task kind is one declaration: its name, the data it needs, how that data is projected
from the stored order snapshot, and ``perform(task, ctx) -> dict``.

    @kind(model=LoyaltyData, project=lambda order: {"email": order.customer.email, ...})
    def award_points(task: Task, ctx: EffectContext) -> dict:
        ...                    # raise RetryableError / PermanentError; return a small JSON dict

``perform`` never decides HTTP status codes and never writes failed-task records: the
dispatcher does both, the same way for every kind.

A kind whose effect is ONE create at the far end that refuses a second one (GCS
``if_generation_match=0``, an exclusive local create, a Firestore ``create()``) may declare
``create_once=True``: ``perform`` then reports ``"created": False`` when the record was already
there, and the delivery counts as a duplicate (the far end's precondition guards the window
between the effect and its done mark). With ``done_at`` its far-end record is also read as
"done" (order view, console, stats, cancel), which covers effects recorded while
a create-once kind's first attempt ran without a claim (until the ledger came). Every attempt takes the claim, as for
every kind, so a cancel is never contradicted by an effect a delivery had not yet claimed.

A kind that ships goods declares ``needs_shipping=True``: for an order without a
``shipping_address`` its task fails permanently (``InvalidPayload`` naming the missing field,
one failed-task record, never a retry) before anything is projected or performed.
 The catalog (``[kinds.NAME]``) says where
a kind is queued and where its code lives (``effect = "module:attribute"``); the built-ins in
``handlers/kinds/`` are ordinary declarations found by their name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Protocol, overload

from pydantic import BaseModel, ValidationError

from ordertasks.handlers.config import EmailConfig, WebhookConfig
from ordertasks.handlers.contract import OrderSnapshot, Task, describe_errors
from ordertasks.handlers.errors import ConfigurationError, InvalidPayload
from ordertasks.handlers.ports import AnalyticsStore, BlobStore, Clock, Mailer, WebhookClient

Projection = Callable[[OrderSnapshot], "Mapping[str, Any] | BaseModel"]


@dataclass(frozen=True)
class Seller:
    """The shop as printed on invoices and emails."""

    name: str
    address: str
    tax_id: str
    mail_from: str


@dataclass(frozen=True)
class EffectContext:
    """What a kind's ``perform`` may use; built once per process by the wiring.

    ``webhooks`` holds one client per kind that has a webhook target (catalog or default);
    ``email`` the catalog's ``[email]`` settings (the review link).
    """

    mailer: Mailer
    blobs: BlobStore
    analytics: AnalyticsStore
    clock: Clock
    seller: Seller
    analytics_shards: int = 8
    webhooks: Mapping[str, WebhookClient] = field(default_factory=dict)
    email: EmailConfig = EmailConfig()

    def webhook(self, kind: str) -> WebhookClient:
        """The HTTP client of ``kind``'s webhook; ``ConfigurationError`` if it has none."""
        client = self.webhooks.get(kind)
        if client is None:
            raise ConfigurationError(f"kind {kind!r} has no webhook: add [kinds.{kind}.webhook] url = ...")
        return client


Effect = Callable[[Task, EffectContext], dict[str, Any]]


@dataclass(frozen=True)
class FarEnds:
    """The far ends a create-once kind's record is read back from (order view, console, stats)."""

    blobs: BlobStore
    analytics: AnalyticsStore


@dataclass(frozen=True)
class Recorded:
    """A create-once effect found at its far end: when it was recorded, and its result."""

    at: datetime
    result: dict[str, Any]


class DoneRecord(Protocol):
    """Where a create-once kind's effect is recorded at the far end, read instead of an
    idempotency record. Both methods raise ``DependencyUnavailable`` when the far end is down."""

    def find(self, order_id: str, ends: FarEnds) -> Recorded | None:
        """The effect's record for ``order_id``, or ``None`` if it has not happened."""
        ...

    def count(self, ends: FarEnds, since: datetime | None = None) -> int:
        """How many effects are recorded (created at or after ``since``): an aggregation or a listing."""
        ...


def whole_order(order: OrderSnapshot) -> OrderSnapshot:
    """The default projection: the whole order snapshot."""
    return order


@dataclass(frozen=True)
class Kind:
    """One declared task kind (see the module docstring).

    ``webhook`` is the default target of a kind whose ``perform`` posts to a webhook, used when
    the catalog gives none (the warehouse notification's is the ``ORDERTASKS_WAREHOUSE_*`` one).
    ``create_once``: the effect is one create-only write at the far end and ``perform``'s result
    says ``"created"`` (see the module docstring); ``done_at``: where that record is read back,
    so no done mark is written for it (without one, a done mark follows the effect).
    ``needs_shipping``: the kind needs the order's ``shipping_address`` (see the module docstring).
    """

    perform: Effect
    name: str | None = None
    model: type[BaseModel] = OrderSnapshot
    project: Projection = whole_order
    webhook: WebhookConfig | None = None
    create_once: bool = False
    done_at: DoneRecord | None = None
    needs_shipping: bool = False

    def __post_init__(self) -> None:
        if self.done_at is not None and not self.create_once:
            raise ConfigurationError(f"kind {self.name or self.perform.__name__!r}: done_at needs create_once=True "
                                     "(only a create-once effect can be its own done mark)")

    def named(self, name: str) -> "Kind":
        """This declaration under the catalog's name for it."""
        return self if self.name == name else replace(self, name=name)

    def task_for(self, order_id: str, order: OrderSnapshot, raw: dict[str, Any]) -> Task:
        """The task this kind performs for ``order``: its data projected and validated."""
        if self.needs_shipping and order.shipping_address is None:
            raise InvalidPayload(f"order {order_id} has no shipping_address, and {self.name} needs one (it ships "
                                 "goods): a retry cannot help; cancel this kind for an order that ships nothing")
        try:
            data = self.model.model_validate(self.project(order))
        except ValidationError as exc:
            raise InvalidPayload(f"order {order_id} lacks what {self.name} needs: {describe_errors(exc)}") from exc
        return Task(kind=self.name or "", order_id=order_id, data=data, raw=raw, order=order)

    @staticmethod
    def created_now(result: dict[str, Any]) -> bool:
        """Whether a create-once ``perform`` created its record now (``False``: it was already there)."""
        return bool(result.get("created", True))

    def claiming(self) -> "Kind":
        """This kind with the claim taken before every attempt (create-once ignored), as before 0.3."""
        return replace(self, create_once=False, done_at=None)


@overload
def kind(name: Effect, /) -> Kind: ...


@overload
def kind(name: str | None = None, *, model: type[BaseModel] = OrderSnapshot, project: Projection = whole_order,
         webhook: WebhookConfig | None = None, create_once: bool = False,
         done_at: DoneRecord | None = None, needs_shipping: bool = False) -> Callable[[Effect], Kind]: ...


def kind(name: str | Effect | None = None, *, model: type[BaseModel] = OrderSnapshot,
         project: Projection = whole_order, webhook: WebhookConfig | None = None, create_once: bool = False,
         done_at: DoneRecord | None = None, needs_shipping: bool = False) -> Kind | Callable[[Effect], Kind]:
    """Declare a task kind from its ``perform`` function (a decorator, like dramatiq's ``@actor``):
    bare ``@kind`` (the kind is named after the function and gets the whole order) or
    ``@kind("name", model=..., project=...)``."""
    def declare(perform: Effect) -> Kind:
        return Kind(perform=perform, name=None if callable(name) else name, model=model, project=project,
                    webhook=webhook, create_once=create_once, done_at=done_at, needs_shipping=needs_shipping)
    return declare(name) if callable(name) else declare


class SystemClock:
    """The real clock (UTC)."""

    def now(self) -> datetime:
        """Now, timezone-aware UTC."""
        return datetime.now(timezone.utc)
