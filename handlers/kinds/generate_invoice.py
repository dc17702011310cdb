"""The invoice kind: the order's invoice PDF (``handlers.invoice_pdf`` draws it), written once to the
invoice blob store, whose object is also the done mark.

The PDF module loads when an invoice is drawn, not when the kind is declared: the library's
status view declares every kind of the catalog (to read an invoice's done mark) and runs where
reportlab, the ``handler`` extra's, is not installed (``pip install ordertasks``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from ordertasks.handlers.contract import ORDER_ID_RULE, OrderSnapshot, Task, valid_order_id
from ordertasks.handlers.errors import ConfigurationError
from ordertasks.handlers.kind import EffectContext, FarEnds, Kind, Recorded, Seller

CONTENT_TYPE = "application/pdf"
INVOICE_PREFIX = "invoices/"


def invoice_path(order_id: str) -> str:
    """Where the invoice lives in the blob store; ``ValueError`` for an id that is not safe.

    The task contract already refuses such ids; checking here too means no caller can turn
    an order id into ``invoices/../x.pdf`` or a GCS name outside ``invoices/``.
    """
    if not valid_order_id(order_id):
        raise ValueError(f"order id {order_id[:80]!r} cannot name an invoice: {ORDER_ID_RULE}")
    return f"{INVOICE_PREFIX}{order_id}.pdf"


def render_invoice_pdf(order_id: str, snapshot: OrderSnapshot, seller: Seller) -> bytes:
    """The invoice as PDF bytes; the same inputs always give the same bytes (``handlers.invoice_pdf``).
    ``ConfigurationError`` where reportlab is not installed (the delivery is retried)."""
    try:
        from ordertasks.handlers.invoice_pdf import render_invoice_pdf as render
    except ModuleNotFoundError as exc:
        missing = (exc.name or "reportlab").split(".")[0]
        raise ConfigurationError(f"the invoice kind draws its PDF with {missing}, which is not installed: "
                                 "pip install 'ordertasks[handler]'") from exc
    return render(order_id, snapshot, seller)


def generate_invoice(task: Task, ctx: EffectContext) -> dict[str, Any]:
    """Render the invoice and write it once; result ``{"path", "written", "created", "sha256"}``."""
    pdf = render_invoice_pdf(task.order_id, task.data, ctx.seller)
    path = invoice_path(task.order_id)
    written = ctx.blobs.put_once(path, pdf, CONTENT_TYPE)
    return {"path": path, "written": written, "created": written, "sha256": hashlib.sha256(pdf).hexdigest()}


class InvoiceRecord:
    """The invoice object itself is the done mark: its existence says the effect happened."""

    def find(self, order_id: str, ends: FarEnds) -> Recorded | None:
        """The order's invoice object, when it exists: ``{"path": ...}``."""
        path = invoice_path(order_id)
        created = ends.blobs.created_at(path)
        return None if created is None else Recorded(created, {"path": path, "written": True})

    def count(self, ends: FarEnds, since: datetime | None = None) -> int:
        """Invoices in the blob store (a listing of ``invoices/``)."""
        return ends.blobs.count(INVOICE_PREFIX, since)


# Written with if_generation_match=0 (GCS) / an exclusive link (local): create-once.
KIND = Kind(perform=generate_invoice, create_once=True, done_at=InvoiceRecord())
