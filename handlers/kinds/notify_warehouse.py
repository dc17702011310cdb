"""Warehouse notification: tell the warehouse what to pick, pack and ship.

A webhook kind with its own data: exactly-once in effect rests on the ``Idempotency-Key``
(``{order_id}:notify_warehouse``), so a repeated POST after a crash is recognised by the
warehouse (2xx again or 409). Its default target is ``ORDERTASKS_WAREHOUSE_URL`` (token
``ORDERTASKS_WAREHOUSE_TOKEN``, timeout ``ORDERTASKS_WAREHOUSE_TIMEOUT``); a
``[kinds.notify_warehouse.webhook]`` table in the catalog overrides it.

It needs the order's ``shipping_address`` (``needs_shipping``): for an order without one the
task fails at once with a failed-task record saying so, and nothing is posted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, field_serializer

from ordertasks.handlers.config import WebhookConfig
from ordertasks.handlers.contract import Address, ContractModel, OrderSnapshot
from ordertasks.handlers.kind import Kind
from ordertasks.handlers.webhook import post_webhook


class WarehouseItem(ContractModel):
    """A line to pick and pack."""

    sku: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    name: str = Field(min_length=1, max_length=200)
    quantity: int = Field(gt=0, le=10_000)


class WarehouseData(ContractModel):
    """What the warehouse needs to ship: ``{"placed_at", "ship_to", "items"}`` (no prices)."""

    placed_at: datetime
    ship_to: Address
    items: tuple[WarehouseItem, ...] = Field(min_length=1, max_length=200)

    @field_serializer("placed_at")
    def _iso(self, placed_at: datetime) -> str:
        # The warehouse API has always received Python's isoformat ("+00:00", not "Z").
        return placed_at.isoformat()


def warehouse_data(order: OrderSnapshot) -> dict[str, Any]:
    """The projection: when, where to, and what (SKU, name, quantity)."""
    items = [{"sku": i.sku, "name": i.name, "quantity": i.quantity} for i in order.items]
    return {"placed_at": order.placed_at, "ship_to": order.shipping_address, "items": items}


DEFAULT_TARGET = WebhookConfig(url="${ORDERTASKS_WAREHOUSE_URL:-http://127.0.0.1:8090/notifications}",
                               token_env="ORDERTASKS_WAREHOUSE_TOKEN",
                               timeout_seconds="${ORDERTASKS_WAREHOUSE_TIMEOUT:-10}", token_optional=True)
KIND = Kind(perform=post_webhook, model=WarehouseData, project=warehouse_data, webhook=DEFAULT_TARGET,
            needs_shipping=True)
