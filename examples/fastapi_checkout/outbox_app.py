"""The same checkout with its orders in its own database: the order row and its side effects
commit in one transaction (ordertasks' transactional outbox, docs/library.md), and a background
task relays them once the response is out. ORDERTASKS_OUTBOX_URL names the shop's database
(SQLAlchemy's URL: postgresql+psycopg://… or sqlite:///…); `ordertasks outbox init` made its tables.
"""

from dataclasses import asdict
from typing import Any

from fastapi import BackgroundTasks, FastAPI, HTTPException
from sqlalchemy import Column, MetaData, String, Table, create_engine
from sqlalchemy.exc import IntegrityError

from ordertasks import OrderNotFound, OrderTasks

tasks = OrderTasks.from_env()
engine = create_engine(tasks.settings.store.outbox_url or "sqlite:///shop.db")
shop_orders = Table("shop_orders", MetaData(), Column("order_id", String(64), primary_key=True),
                    Column("total", String(32), nullable=False))
shop_orders.metadata.create_all(engine)
app = FastAPI()


@app.post("/orders/{order_id}/paid")
def order_paid(order_id: str, order: dict[str, Any], background: BackgroundTasks) -> dict[str, Any]:
    """Paid: your order row and its side effects commit together, or neither does."""
    try:
        with engine.begin() as conn:
            conn.execute(shop_orders.insert().values(order_id=order_id, total=order["totals"]["total"]))
            results = tasks.schedule({"order_id": order_id, **order}, transaction=conn)
    except IntegrityError as exc:
        raise HTTPException(409, f"order {order_id} exists") from exc
    background.add_task(tasks.relay)          # after the commit: to Cloud Tasks, once
    return {"tasks": [asdict(r) for r in results]}


@app.get("/orders/{order_id}/tasks")
def order_tasks(order_id: str) -> dict[str, Any]:
    """Each side effect's state, once relayed: pending, scheduled, done, failed or cancelled."""
    try:
        return tasks.status(order_id)
    except OrderNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
