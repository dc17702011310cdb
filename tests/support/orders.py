"""Placing orders straight into a store, as the checkout or ``OrderTasks.schedule`` would.

Task bodies are references, so a handler test must store the paid order before it delivers.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ordertasks.handlers.config import Catalog, load_catalog
from ordertasks.handlers.contract import OrderSnapshot, Task, encode
from ordertasks.handlers.ports import OrderRecord, Stores
from ordertasks.handlers.registry import KindRegistry


def store_paid_order(stores: Stores, order_id: str, snapshot: OrderSnapshot | dict[str, Any],
                     status: str = "paid") -> None:
    """Write ``snapshot`` as order ``order_id`` with ``status`` (default: paid) to ``stores.orders``."""
    data = snapshot.model_dump(mode="json") if isinstance(snapshot, OrderSnapshot) else snapshot
    now = datetime.now(timezone.utc)
    stores.orders.create_order(OrderRecord(order_id=order_id, status=status, snapshot=data, created_at=now,
                                          charge_id="ch_test" if status == "paid" else None,
                                          paid_at=now if status == "paid" else None))


def body(kind: str, order_id: str) -> bytes:
    """The task body the producer sends for ``kind`` of ``order_id``."""
    return encode(kind, order_id)


def task_for(kind: str, order_id: str, order: OrderSnapshot, catalog: Catalog | None = None) -> Task:
    """The task the handler would perform for ``kind`` of a stored ``order`` (the real projection)."""
    registry = KindRegistry.from_catalog(catalog or load_catalog())
    return registry.kind(kind).task_for(order_id, order, {"kind": kind, "v": 2, "order_id": order_id})
