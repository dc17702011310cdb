"""The review request, a week after the order (the catalog sets the delay)."""

from ordertasks.handlers.mail import Wording, email_kind

WORDING = Wording(
    "How did we do with order {order_id}?", "Tell us what you think",
    "Hello {name}, a week has passed since your order. We would love to hear how it went.")
KIND = email_kind(WORDING)
