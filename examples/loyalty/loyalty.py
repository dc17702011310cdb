"""A shop's own side effect, outside the ordertasks package: award loyalty points per order.

The whole integration is this module plus one catalog table (see ``tasks.toml`` here):

    [kinds.award_loyalty_points]
    queue = "ordertasks-loyalty"
    delay_seconds = 10
    dispatch_deadline_seconds = 60
    effect = "loyalty:award_points"

ordertasks gives it what a built-in kind gets: one claim per (order, kind), retries with
the queue's backoff, the failed-task log, triage, stats and the dev stack.
"""

from __future__ import annotations

import os
from decimal import ROUND_DOWN, Decimal
from typing import Any

import requests

from ordertasks import EffectContext, OrderSnapshot, PermanentError, RetryableError, Task, kind
from pydantic import BaseModel


class LoyaltyData(BaseModel):
    """What the loyalty API needs: who, and how much they spent."""

    email: str
    currency: str
    total: Decimal


def loyalty_data(order: OrderSnapshot) -> dict[str, Any]:
    """Project the stored order onto what this kind needs (nothing else reaches it)."""
    return {"email": order.customer.email, "currency": order.totals.currency, "total": order.totals.total}


@kind(model=LoyaltyData, project=loyalty_data)
def award_points(task: Task, ctx: EffectContext) -> dict[str, Any]:
    """One point per whole unit spent; the Idempotency-Key makes a repeat harmless."""
    points = int(task.data.total.to_integral_value(rounding=ROUND_DOWN))
    body = {"order_id": task.order_id, "email": task.data.email, "points": points}
    try:
        answer = requests.post(os.environ["LOYALTY_URL"], json=body, timeout=10,
                               headers={"Idempotency-Key": task.effect_key})
    except requests.RequestException as exc:
        raise RetryableError(f"loyalty API unreachable: {exc}") from exc
    if answer.status_code >= 500 or answer.status_code == 429:
        raise RetryableError(f"loyalty API answered {answer.status_code}")
    if answer.status_code >= 400 and answer.status_code != 409:
        raise PermanentError(f"loyalty API refused the points with {answer.status_code}: {answer.text[:200]}")
    return {"points": points, "status": answer.status_code}
