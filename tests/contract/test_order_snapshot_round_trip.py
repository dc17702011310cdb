"""Every store keeps an order snapshot exactly: no shipping address, the shop's metadata, KWD.

What ``handlers.order_metadata`` admits is what memory, SQLite and Firestore all give back as
it was written (Firestore: maps and arrays, 64-bit integers, doubles; no array in an array).
"""

from __future__ import annotations

from typing import Any

from ordertasks.handlers.contract import OrderSnapshot
from ordertasks.handlers.ports import OrderRecord, Stores
from tests.contract.clock import T0
from tests.effects.orders import digital_order, kwd_order

METADATA: dict[str, Any] = {
    "campaign": "spring-2024", "note": "Grüße, 山田さん 👋", "empty_text": "", "nothing": None, "yes": True,
    "count": 3, "ratio": 0.1, "negative": -2.5e-7, "int64": 2 ** 63 - 1, "min_int64": -(2 ** 63),
    "a.b": "dotted key", "x/y": "slashed key", "with space": 1, "ünï": "unicode key",
    "tags": ["ebook", 3, 1.5, False, None, {"nested": ["in", "an", "object"]}],
    "crm": {"id": "C-1", "segments": [{"name": "vip", "since": "2023-01-01"}], "empty_map": {}, "empty_list": []},
}


def _round_trip(stores: Stores, order_id: str, snapshot: OrderSnapshot) -> OrderSnapshot:
    data = snapshot.model_dump(mode="json")
    assert stores.orders.create_order(OrderRecord(order_id, "created", data, T0)) is True
    stored = stores.orders.get_order(order_id)
    assert stored is not None and stored.snapshot == data
    return OrderSnapshot.model_validate(stored.snapshot)


def test_an_order_without_shipping_and_with_metadata_comes_back_as_written(stores: Stores) -> None:
    snapshot = digital_order(**METADATA)
    back = _round_trip(stores, "o-meta", snapshot)
    assert back == snapshot and back.shipping_address is None
    assert back.metadata == METADATA
    assert type(back.metadata["count"]) is int and type(back.metadata["ratio"]) is float


def test_a_kwd_order_keeps_its_three_decimals(stores: Stores) -> None:
    back = _round_trip(stores, "o-kwd", kwd_order())
    assert back == kwd_order() and str(back.totals.total) == "12.345" and back.metadata == {}
