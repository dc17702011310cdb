"""An async FastAPI checkout with its orders in its own PostgreSQL: the shop's order row, its
stock and the order's side effects commit in one transaction, or none of them does
(`await tasks.schedule(order, transaction=session)`, docs/library.md "Inside your own
transaction"); after the commit a background task relays them to Cloud Tasks, once.

    ORDERTASKS_OUTBOX_URL=postgresql+psycopg://shop@db/shop    # the shop's database, SQLAlchemy's URL
    ordertasks outbox init --database-url "$ORDERTASKS_OUTBOX_URL"
    uvicorn async_outbox_app:app

What it installs: ordertasks with the `outbox` extra (psycopg 3 and SQLAlchemy), greenlet (SQLAlchemy's
asyncio support), fastapi and uvicorn; nothing for SQLite or Firestore it does not use.
How the shop tests its kinds: the `ordertasks_local` pytest fixture (docs/testing.md), in
milliseconds, with no emulator and no database; tests/outbox/test_async_examples.py serves
this app against a real PostgreSQL and the Cloud Tasks emulator.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from fastapi import BackgroundTasks, FastAPI, HTTPException, Request
from sqlalchemy import Column, Integer, MetaData, String, Table, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from ordertasks import AsyncOrderTasks, OrderNotFound

metadata = MetaData()
shop_orders = Table("shop_orders", metadata, Column("order_id", String(64), primary_key=True),
                    Column("total", String(32), nullable=False))
shop_stock = Table("shop_stock", metadata, Column("sku", String(64), primary_key=True),
                   Column("available", Integer, nullable=False))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with AsyncOrderTasks.from_env() as tasks:          # closes the relay's connection and the channel
        url = tasks.settings.store.outbox_url
        if not url:
            raise RuntimeError("set ORDERTASKS_OUTBOX_URL=postgresql+psycopg://… (the shop's database)")
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)         # the shop's own tables (use your migrations)
        app.state.tasks, app.state.sessions = tasks, async_sessionmaker(engine)
        try:
            yield
        finally:
            await engine.dispose()

app = FastAPI(lifespan=lifespan)


@app.post("/orders/{order_id}/paid")
async def order_paid(order_id: str, order: dict[str, Any], request: Request,
                     background: BackgroundTasks) -> dict[str, Any]:
    """Paid: the order row, its stock and its side effects commit together, or none does."""
    tasks: AsyncOrderTasks = request.app.state.tasks
    try:
        async with request.app.state.sessions.begin() as session:      # your transaction
            await session.execute(shop_orders.insert().values(order_id=order_id, total=order["totals"]["total"]))
            results = await tasks.schedule({"order_id": order_id, **order}, transaction=session)
            await take_stock(session, order["items"])                  # out of stock: all of it rolls back
    except IntegrityError as exc:
        raise HTTPException(409, f"order {order_id} exists") from exc
    background.add_task(tasks.relay)          # after the commit: to our store and Cloud Tasks, once
    return {"tasks": [asdict(r) for r in results]}


async def take_stock(session: AsyncSession, items: list[dict[str, Any]]) -> None:
    """Take each line's quantity from the stock; 409 when a SKU has too few left."""
    for item in items:
        sku, wanted = item["sku"], item["quantity"]
        taken = await session.execute(update(shop_stock)
                                      .where(shop_stock.c.sku == sku, shop_stock.c.available >= wanted)
                                      .values(available=shop_stock.c.available - wanted))
        if taken.rowcount == 0:
            raise HTTPException(409, f"{sku} is out of stock")


@app.put("/stock/{sku}")
async def set_stock(sku: str, stock: dict[str, int], request: Request) -> dict[str, int]:
    """The shop's stock of one SKU: {"available": n}."""
    async with request.app.state.sessions.begin() as session:
        await session.execute(insert(shop_stock).values(sku=sku, available=stock["available"])
                              .on_conflict_do_update(index_elements=[shop_stock.c.sku],
                                                     set_={"available": stock["available"]}))
    return {"available": stock["available"]}


@app.get("/orders/{order_id}/tasks")
async def order_tasks(order_id: str, request: Request) -> dict[str, Any]:
    """Each side effect's state, once relayed: pending, scheduled, done, failed or cancelled."""
    try:
        return await request.app.state.tasks.status(order_id)
    except OrderNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
