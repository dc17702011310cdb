"""The perform of every webhook kind: POST the kind's data with an ``Idempotency-Key``.

The key is ``{order_id}:{kind}`` (the effect key): unique per order and kind, the same on every
retry and replay, so the far end can recognise a repeat (2xx again, or 409). The client
(``handlers/backends/http.py``) maps the answer to done / ``Rejected`` / retry.
"""

from __future__ import annotations

from typing import Any

from ordertasks.handlers.contract import Task
from ordertasks.handlers.kind import EffectContext, Kind


def webhook_payload(task: Task) -> dict[str, Any]:
    """``{"order_id", ...the kind's data}`` as JSON-ready values."""
    return {"order_id": task.order_id, **task.data.model_dump(mode="json")}


def post_webhook(task: Task, ctx: EffectContext) -> dict[str, Any]:
    """POST the payload to the kind's webhook; the result is the client's."""
    return ctx.webhook(task.kind).post(task.effect_key, webhook_payload(task))


def posts_webhook(kind: Kind) -> bool:
    """True when ``kind`` performs by posting to its webhook (so it needs a target)."""
    return kind.perform is post_webhook


WEBHOOK_KIND = Kind(perform=post_webhook)
