"""The order reference a customer sees (email subjects and bodies), never the internal id alone.

In order of preference:

1. the shop's own order number, ``metadata["order_number"]`` (a string or a whole number),
   shown as ``#10023`` (a leading ``#`` is not doubled). It is ignored, never an error, when it
   is not plain short text: empty, over ``MAX_ORDER_NUMBER`` characters, or holding a control,
   format (bidi) or line-break character or ``=?`` (an encoded-word opener): it goes into the
   ``Subject`` header;
2. for an id the checkout issued (``ord_`` + 20 base32 characters), its first eight random
   characters in upper case, in two groups: ``ord_gjm62k4q…`` → ``#GJM6-2K4Q``. Derived from
   the id, so every email of an order shows the same one; 40 bits, so two orders may share
   one among about a million: the full id is in every email's footer, for support;
3. any other id (a shop that passes its own ids to the library), as it is: ``#A1001``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

MAX_ORDER_NUMBER = 40
CHECKOUT_ID = re.compile(r"^ord_([a-z2-7]{8})[a-z2-7]{12}$")
# Cc control, Cf format (bidi overrides), Cs surrogate, Co private use, Cn unassigned, Zl/Zp separators.
_NOT_PLAIN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def shop_order_number(metadata: Mapping[str, Any]) -> str | None:
    """``metadata["order_number"]`` as plain text, or ``None`` when absent or unusable."""
    value = metadata.get("order_number")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not 0 < len(text) <= MAX_ORDER_NUMBER or "=?" in text:
        return None
    if any(unicodedata.category(char) in _NOT_PLAIN for char in text):
        return None
    return " ".join(text.split())


def order_reference(order_id: str, order_number: str | None = None) -> str:
    """What the customer sees for the order (see the module docstring): ``#GJM6-2K4Q``."""
    if order_number:
        return order_number if order_number.startswith("#") else f"#{order_number}"
    match = CHECKOUT_ID.fullmatch(order_id)
    if match:
        short = match.group(1).upper()
        return f"#{short[:4]}-{short[4:]}"
    return f"#{order_id}"
