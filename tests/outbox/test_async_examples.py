"""``examples/fastapi_checkout/async_outbox_app.py`` served over ASGI (httpx's ``AsyncClient``,
the app's lifespan around it, one event loop) against a real PostgreSQL and the Cloud Tasks
emulator: a paid order commits its row, its stock and its outbox rows together, the background
relay puts its tasks in the emulator once; an order that fails after ``schedule`` (out of
stock) leaves nothing: no order row, no stock taken, no outbox row, no task, no status."""

from __future__ import annotations

from pathlib import Path

import pytest

from ordertasks.infra.config import REPO_ROOT
from ordertasks.producer.outbox import OutboxCounts
from tests.library.test_examples import load
from tests.outbox.conftest import ShopDatabase, environment, order, shop_database
from tests.outbox.test_async_outbox import emulator_task_names, libpq_url, run
from tests.producer.conftest import Emulator, make_settings

APP = REPO_ROOT / "examples" / "fastapi_checkout" / "async_outbox_app.py"


def shop_orders(shop: ShopDatabase) -> list[str]:
    """The order ids in the shop's own ``shop_orders`` table."""
    import psycopg

    with psycopg.connect(libpq_url(shop)) as conn:
        return [row[0] for row in conn.execute("SELECT order_id FROM shop_orders ORDER BY order_id")]


def stock_left(shop: ShopDatabase) -> dict[str, int]:
    """Stock per SKU in the shop's table."""
    import psycopg

    with psycopg.connect(libpq_url(shop)) as conn:
        return dict(conn.execute("SELECT sku, available FROM shop_stock").fetchall())


def test_the_async_outbox_checkout_commits_or_rolls_back_order_row_and_effects_together(
        tmp_path: Path, emulator: Emulator, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    shop = shop_database("postgresql", tmp_path, request)
    for name, value in environment(tmp_path, emulator, shop).items():
        monkeypatch.setenv(name, value)
    app = load(APP, "shop_async_outbox_app")
    body = {k: v for k, v in order("ord_async_shop").items() if k != "order_id"}
    skus = {item["sku"] for item in body["items"]}

    async def scenario() -> int:
        async with app.app.router.lifespan_context(app.app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app.app), base_url="http://shop") as client:
            for sku in skus:
                assert (await client.put(f"/stock/{sku}", json={"available": 3})).status_code == 200
            paid = await client.post("/orders/ord_async_shop/paid", json=body)
            assert paid.status_code == 200, paid.text
            assert {t["state"] for t in paid.json()["tasks"]} == {"pending"}
            view = (await client.get("/orders/ord_async_shop/tasks")).json()      # the background relay ran
            assert view["status"] == "paid" and {t["state"] for t in view["tasks"]} == {"scheduled"}
            again = await client.post("/orders/ord_async_shop/paid", json=body)
            assert again.status_code == 409, again.text                           # the order row exists
            short = await client.post("/orders/ord_out_of_stock/paid", json=body)  # LAMP-01: none left
            assert short.status_code == 409 and "out of stock" in short.text, short.text
            assert (await client.get("/orders/ord_out_of_stock/tasks")).status_code == 404
            return len(view["tasks"])

    kinds = run(scenario())
    assert shop_orders(shop) == ["ord_async_shop"], "the failed order's own row rolled back with its effects"
    assert stock_left(shop) == {"DESK-OAK": 2, "LAMP-01": 0, "CABLE-2M": 0}, "taken once, by the order that committed"
    assert shop.counts() == OutboxCounts(0, 1, 0)
    names = emulator_task_names(make_settings(tmp_path, emulator.host))
    assert len(names) == len(set(names)) == kinds and all("ord_async_shop" in n for n in names)

