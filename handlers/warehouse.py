"""Warehouse notification: tell the warehouse what to pick, pack and ship.

Exactly-once in effect rests on the ``Idempotency-Key`` (``{order_id}:notify_warehouse``): a
repeated POST after a crash is recognised by the warehouse (2xx again or 409).
"""

from __future__ import annotations

from typing import Any

from handlers.contract import Task, WarehouseData
from handlers.registry import EffectContext


def warehouse_payload(order_id: str, data: WarehouseData) -> dict[str, Any]:
    """The JSON body: ``{"order_id", "placed_at", "ship_to", "items"}``."""
    return {
        "order_id": order_id,
        "placed_at": data.placed_at.isoformat(),
        "ship_to": data.shipping_address.model_dump(mode="json"),
        "items": [item.model_dump(mode="json") for item in data.items],
    }


def notify_warehouse(task: Task, ctx: EffectContext) -> dict[str, Any]:
    """POST the order to the warehouse; result ``{"status", "warehouse_ref", ...}``."""
    return ctx.warehouse.notify(task.effect_key, warehouse_payload(task.order_id, task.data))
