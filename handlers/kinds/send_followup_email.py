"""The follow-up, a day after the order (the catalog sets the delay)."""

from ordertasks.handlers.mail import Wording, email_kind

WORDING = Wording(
    "Your order {reference} is on its way", "Your order is on its way",
    "Hello {name}, your order has left our warehouse. Reply to this email if anything is wrong.")
KIND = email_kind(WORDING)
