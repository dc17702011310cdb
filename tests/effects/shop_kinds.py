"""A shop's own kinds, as a shop writes them (``effect = "tests.effects.shop_kinds:..."``).

``gift_note`` reads the shop's ``metadata`` from the order and mails the note; ``ship_gift``
ships, so it declares ``needs_shipping`` like the built-in warehouse notification.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

from ordertasks import EffectContext, PermanentError, Task, kind


@kind()
def gift_note(task: Task, ctx: EffectContext) -> dict[str, Any]:
    """Mail the gift note the shop put in ``metadata["gift"]``; nothing to do without one."""
    assert task.order is not None
    gift = task.order.metadata.get("gift")
    if not isinstance(gift, dict):
        raise PermanentError("no gift in the order's metadata")
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = ctx.seller.mail_from, gift["to"], f"A gift: order {task.order_id}"
    msg.set_content(f"{gift['note']}\n(campaign {task.order.metadata.get('campaign')})\n")
    ctx.mailer.send(msg)
    return {"to": gift["to"]}


@kind(needs_shipping=True)
def ship_gift(task: Task, ctx: EffectContext) -> dict[str, Any]:
    """Ship the gift wrapping to the order's address."""
    assert task.order is not None and task.order.shipping_address is not None
    return {"city": task.order.shipping_address.city}
