"""The order confirmation, sent as soon as the order is paid."""

from ordertasks.handlers.mail import Wording, email_kind

WORDING = Wording(
    "Your order {reference} is confirmed", "Thank you for your order",
    "Hello {name}, we received your payment and are preparing your order.")
KIND = email_kind(WORDING)
