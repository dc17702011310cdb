"""Which function performs which task kind, and what each may use.

An effect is a plain function ``(task, ctx) -> result`` where ``result`` is a small JSON-ready
dict stored on the idempotency record. It raises ``RetryableError`` or ``PermanentError``;
it never decides HTTP status codes or writes failed-task records (``dispatch`` does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from handlers.contract import Task
from handlers.ports import AnalyticsStore, BlobStore, Clock, Mailer, WarehouseClient


@dataclass(frozen=True)
class Seller:
    """The shop as printed on invoices and emails."""

    name: str
    address: str
    tax_id: str
    mail_from: str


@dataclass(frozen=True)
class EffectContext:
    """The dependencies effects may use, chosen by ``wiring``."""

    mailer: Mailer
    warehouse: WarehouseClient
    blobs: BlobStore
    analytics: AnalyticsStore
    clock: Clock
    seller: Seller
    analytics_shards: int = 8


Effect = Callable[[Task, EffectContext], dict[str, Any]]


class SystemClock:
    """The real clock (UTC)."""

    def now(self) -> datetime:
        """Now, timezone-aware UTC."""
        return datetime.now(timezone.utc)


def default_effects() -> Mapping[str, Effect]:
    """The kinds this handler serves and the function that performs each."""
    from handlers import analytics, email, invoice, warehouse
    from handlers.contract import (GENERATE_INVOICE, NOTIFY_WAREHOUSE, RECORD_ANALYTICS, REQUEST_REVIEW,
                                   SEND_CONFIRMATION_EMAIL, SEND_FOLLOWUP_EMAIL)

    return {
        SEND_CONFIRMATION_EMAIL: email.send_confirmation_email,
        SEND_FOLLOWUP_EMAIL: email.send_followup_email,
        REQUEST_REVIEW: email.request_review,
        RECORD_ANALYTICS: analytics.record_analytics,
        GENERATE_INVOICE: invoice.generate_invoice,
        NOTIFY_WAREHOUSE: warehouse.notify_warehouse,
    }
