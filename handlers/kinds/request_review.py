"""The review request, a week after the order (the catalog sets the delay).

With ``[email] review_url`` in the catalog it links to that page (``{order_id}`` replaced);
without it, it is sent as before, with no link and no mention of one.
"""

from ordertasks.handlers.mail import Wording, email_kind

WORDING = Wording(
    "How did we do with order {reference}?", "Tell us what you think",
    "Hello {name}, a week has passed since your order. We would love to hear how it went.",
    review_prompt="Write a review")
KIND = email_kind(WORDING)
