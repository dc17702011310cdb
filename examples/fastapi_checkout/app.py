"""A shop's own FastAPI checkout handing its paid orders to ordertasks (see docs/library.md)."""

from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, HTTPException

from ordertasks import OrderNotFound, OrderTasks

tasks = OrderTasks.from_env()          # ORDERTASKS_* settings, like every part of ordertasks
app = FastAPI()


@app.post("/orders/{order_id}/paid")
def order_paid(order_id: str, order: dict[str, Any]) -> dict[str, Any]:
    """Your payment provider said "paid": schedule the order's side effects."""
    return {"tasks": [asdict(r) for r in tasks.schedule({"order_id": order_id, **order})]}


@app.get("/orders/{order_id}/tasks")
def order_tasks(order_id: str) -> dict[str, Any]:
    """Each side effect's state: pending, scheduled, done, failed or cancelled."""
    try:
        return tasks.status(order_id)
    except OrderNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


@app.post("/orders/{order_id}/refunded")
def order_refunded(order_id: str) -> dict[str, Any]:
    """Refunded: nothing more happens for this order."""
    try:
        return {"tasks": [asdict(r) for r in tasks.cancel(order_id)]}
    except OrderNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
