"""The order shapes ``OrderTasks.schedule`` takes: no shipping address, the shop's ``metadata``,
any ISO 4217 currency; and the errors that say where data belongs.

Parsing runs without Cloud Tasks (``order_parts`` is the whole of ``schedule``'s validation);
the round trip runs against the real emulator and SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from ordertasks.handlers.contract import OrderSnapshot
from ordertasks.handlers.errors import InvalidPayload
from ordertasks.producer.library import OrderConflict, OrderTasks, order_parts
from tests.effects.orders import digital_order, jpy_order, kwd_order
from tests.producer.conftest import Emulator, make_settings

METADATA = {"campaign": "spring", "gift": {"to": "grace@example.com", "note": "Happy birthday"},
            "tags": ["ebook", 3, 1.5, True, None], "crm": {"id": 12345678901234, "segments": [{"name": "vip"}]}}


def order(order_id: str, snapshot: OrderSnapshot | None = None, **changes: Any) -> dict[str, Any]:
    """An order as a shop hands it over: ``order_id`` plus the snapshot, ``changes`` at the top."""
    raw = (snapshot or digital_order(**METADATA)).model_dump(mode="json")
    return {"order_id": order_id, **raw, **changes}


def refusal(raw: dict[str, Any]) -> str:
    """The message ``schedule`` refuses ``raw`` with."""
    with pytest.raises(InvalidPayload) as caught:
        order_parts(raw)
    return str(caught.value)


# --- unknown fields say where the data belongs ---------------------------------------------------


def test_an_unknown_top_level_field_is_named_with_where_it_belongs() -> None:
    raw = order("ord_shape", currency="EUR")
    assert refusal(raw) == ("order ord_shape is not a valid order snapshot: unknown field 'currency': put the "
                            "shop's own data under \"metadata\"; the currency belongs in totals.currency")


def test_every_unknown_field_is_named_and_the_shop_s_own_go_under_metadata() -> None:
    message = refusal(order("ord_shape", gift_message="hi", email="ada@example.com", loyalty_tier="gold"))
    assert "unknown fields 'email', 'gift_message', 'loyalty_tier': put the shop's own data under \"metadata\"" \
        in message
    assert "the email belongs in customer.email" in message


def test_an_unknown_nested_field_points_to_metadata_too() -> None:
    raw = order("ord_shape")
    raw["customer"]["phone"] = "+49 30 1234"
    assert "customer.phone: is not a field of the order; put the shop's own data under \"metadata\"" in refusal(raw)


# --- no shipping address -----------------------------------------------------------------------


def test_an_order_without_a_shipping_address_is_taken() -> None:
    order_id, snapshot = order_parts(order("ord_ebook"))
    assert (order_id, snapshot.shipping_address) == ("ord_ebook", None)
    _, explicit_none = order_parts(order("ord_ebook", shipping_address=None))
    assert explicit_none == snapshot


# --- metadata ----------------------------------------------------------------------------------


def test_metadata_of_json_values_is_kept_as_given() -> None:
    _, snapshot = order_parts(order("ord_meta"))
    assert snapshot.metadata == METADATA
    assert json.loads(snapshot.model_dump_json())["metadata"] == METADATA
    assert {snapshot, order_parts(order("ord_meta"))[1]} == {snapshot}      # still hashable, as before metadata


def test_an_order_given_as_a_pydantic_model_keeps_its_metadata() -> None:
    class ShopOrder(BaseModel):
        order_id: str
        placed_at: datetime
        customer: dict[str, str]
        items: list[dict[str, Any]]
        totals: dict[str, str]
        metadata: dict[str, Any]

    model = ShopOrder(order_id="ord_model", placed_at=datetime(2024, 3, 1, tzinfo=timezone.utc),
                      customer={"name": "Ada", "email": "ada@example.com"},
                      items=[{"sku": "EBOOK-1", "name": "Notes", "quantity": 1, "unit_price": "9.99"}],
                      totals={"currency": "EUR", "subtotal": "9.99", "tax": "0", "shipping": "0", "total": "9.99"},
                      metadata={"source": "app", "ab": ["b"]})
    assert order_parts(model)[1].metadata == {"source": "app", "ab": ["b"]}


@pytest.mark.parametrize(("metadata", "problem"), [
    ({"score": float("nan")}, "metadata: score is nan: JSON has no NaN or infinity"),
    ({"a": {"limit": float("inf")}}, "metadata: a.limit is inf: JSON has no NaN or infinity"),
    ({"price": Decimal("9.99")}, "metadata: price is a Decimal, not a JSON value"),
    ({"at": datetime(2024, 3, 1)}, "metadata: at is a datetime, not a JSON value"),
    ({"grid": [[1, 2], [3, 4]]}, "metadata: grid[0] is an array inside an array, which Firestore cannot store"),
    ({"big": 2 ** 70}, "metadata: big is outside the 64-bit integer range: send it as a string"),
    ({f"k{n}": n for n in range(51)}, "metadata: has 51 keys; at most 50"),
    ({"blob": "x" * (16 * 1024)}, "bytes as JSON; at most 16384 (16 KiB)"),
    ({"": 1}, "metadata: key '' must be 1 to 128 characters and not __name__"),
    ({"__name__": 1}, "metadata: key '__name__' must be 1 to 128 characters and not __name__"),
    ({"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}, "metadata: a.b.c.d.e.f.g.h.i is nested deeper "
                                                                       "than 8 levels"),
    (["not", "an", "object"], "metadata: must be a JSON object of the shop's own values, not a list"),
])
def test_metadata_that_a_store_could_not_keep_exactly_is_refused_saying_why(metadata: Any, problem: str) -> None:
    assert problem in refusal(order("ord_meta", metadata=metadata))


def test_metadata_just_inside_the_bounds_is_taken() -> None:
    at_the_limit = {f"k{n:02d}": "v" * 300 for n in range(50)}     # 50 keys, under 16 KiB
    assert order_parts(order("ord_meta", metadata=at_the_limit))[1].metadata == at_the_limit
    assert order_parts(order("ord_meta", metadata=None))[1].metadata == {}


# --- currencies --------------------------------------------------------------------------------


def test_jpy_and_kwd_orders_are_taken_with_their_own_decimals() -> None:
    assert order_parts(order("ord_jpy", jpy_order()))[1].totals.total == Decimal("4460")
    assert order_parts(order("ord_kwd", kwd_order()))[1].totals.total == Decimal("12.345")


def test_amounts_with_more_decimals_than_the_currency_has_are_refused() -> None:
    jpy = order("ord_jpy", jpy_order())
    jpy["items"][0]["unit_price"] = "1200.50"
    assert "items.0.unit_price: 1200.50 has more decimals than JPY has: JPY amounts have no decimals" in refusal(jpy)
    kwd = order("ord_kwd", kwd_order())
    kwd["totals"]["total"] = "12.3451"
    assert "totals.total: 12.3451 has more decimals than KWD has: KWD amounts have at most 3 decimals" in refusal(kwd)


# --- the round trip: schedule, store, read back ------------------------------------------------


@pytest.fixture
def tasks(tmp_path: Path) -> Iterator[OrderTasks]:
    emulator = Emulator(tmp_path).start()
    try:
        with OrderTasks.from_settings(make_settings(tmp_path, emulator.host)) as library:
            yield library
    finally:
        emulator.stop()


def test_a_jpy_order_without_shipping_and_with_metadata_is_scheduled_and_stored_whole(tasks: OrderTasks) -> None:
    snapshot = OrderSnapshot.model_validate({**jpy_order().model_dump(mode="json"), "shipping_address": None,
                                             "metadata": METADATA})
    results = tasks.schedule(order("ord_lib_shape", snapshot))
    assert {r.state for r in results} == {"created"} and [r.kind for r in results] == tasks.kinds
    stored = tasks.stores.orders.get_order("ord_lib_shape")
    assert stored is not None and stored.snapshot["metadata"] == METADATA
    assert stored.snapshot["shipping_address"] is None and stored.snapshot["totals"]["currency"] == "JPY"
    assert OrderSnapshot.model_validate(stored.snapshot) == snapshot
    assert {r.state for r in tasks.schedule(order("ord_lib_shape", snapshot))} == {"exists"}


def test_a_scheduled_order_cannot_be_amended(tasks: OrderTasks) -> None:
    tasks.schedule(order("ord_lib_amend"))
    amended = order("ord_lib_amend", metadata={**METADATA, "campaign": "summer"})
    with pytest.raises(OrderConflict, match="cannot be amended: cancel it and schedule the changed order under a "
                                            "new id"):
        tasks.schedule(amended)
