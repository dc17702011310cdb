"""Sample inputs shared by the end-to-end, reliability and producer tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ordertasks.infra.config import DEFAULT_CATALOG

CHECKOUT_BODY: dict[str, Any] = {
    "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
    "shipping_address": {"name": "Ada Lovelace", "line1": "12 St James Sq", "city": "London",
                         "postal_code": "SW1Y 4JH", "country": "GB"},
    "items": [{"sku": "BOOK-1", "name": "Notes on the Engine", "quantity": 2, "unit_price": "19.50"}],
    "currency": "GBP",
    "payment_token": "tok_visa",
}

# An EUR order with two lines (the producer tests and the checkout benchmark).
EUR_CHECKOUT_BODY: dict[str, Any] = {
    "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
    "shipping_address": {"name": "Ada Lovelace", "line1": "1 Market Street", "city": "Berlin",
                         "postal_code": "10115", "country": "DE"},
    "items": [{"sku": "MUG-1", "name": "Mug", "quantity": 2, "unit_price": "9.50"},
              {"sku": "TEA-7", "name": "Tea", "quantity": 1, "unit_price": "4.25"}],
    "currency": "EUR",
    "payment_token": "tok_visa",
}


def fast_catalog(tmp: Path, *, lease_seconds: float | None = None, max_attempts: int | None = None,
                 rate: float | None = None, source: Path = DEFAULT_CATALOG, retry_duration: float = 0,
                 audit_margin: float | None = None, recreations: int | None = None) -> Path:
    """A copy of a catalog (the shipped one by default) with backoffs cut to tenths of a second
    and no retry duration (``retry_duration`` seconds if given): retries end after ``max_attempts``."""
    text = source.read_text()
    text = re.sub(r"min_backoff_seconds = \d+", "min_backoff_seconds = 0.1", text)
    text = re.sub(r"max_backoff_seconds = \d+", "max_backoff_seconds = 0.5", text)
    text = re.sub(r"max_retry_duration_seconds = \d+", f"max_retry_duration_seconds = {retry_duration}", text)
    if audit_margin is not None:
        text = re.sub(r"margin_seconds = \d+", f"margin_seconds = {audit_margin}", text)
    if recreations is not None:
        text = re.sub(r"recreations = \d+", f"recreations = {recreations}", text)
    if lease_seconds is not None:
        text = re.sub(r"lease_seconds = \d+", f"lease_seconds = {lease_seconds}", text)
        # The handler's lease is max(lease_seconds, dispatch deadline): shorten both (15 s is the floor).
        text = re.sub(r"dispatch_deadline_seconds = \d+", "dispatch_deadline_seconds = 15", text)
    if max_attempts is not None:
        text = re.sub(r"max_attempts = \d+", f"max_attempts = {max_attempts}", text)
    if rate is not None:
        text = re.sub(r"max_dispatches_per_second = \d+", f"max_dispatches_per_second = {rate}", text)
        text = re.sub(r"max_burst_size = \d+", f"max_burst_size = {int(rate)}", text)
        text = re.sub(r"max_concurrent_dispatches = \d+", "max_concurrent_dispatches = 50", text)
    path = tmp / "tasks.toml"
    path.write_text(text)
    return path


def catalog_without(path: Path, *tables: str, source: Path = DEFAULT_CATALOG) -> Path:
    """``source`` written to ``path`` without the named tables (``"checkout"``,
    ``"kinds.notify_warehouse"``), each with its sub-tables: a shop's catalog that uses less
    than ours (no checkout of ours, no warehouse)."""
    def dropped(block: str) -> bool:
        header = re.match(r"\[([^\]]+)\]", block)
        return header is not None and any(header[1] == t or header[1].startswith(t + ".") for t in tables)
    blocks = re.split(r"(?m)^(?=\[)", source.read_text())
    path.write_text("".join(block for block in blocks if not dropped(block)))
    return path


def library_order(order_id: str, placed_at: str) -> dict[str, Any]:
    """A paid order as a shop's own checkout hands it to ``OrderTasks.schedule`` (docs/library.md)."""
    return {
        "order_id": order_id,
        "placed_at": placed_at,
        "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "shipping_address": {"name": "Ada Lovelace", "line1": "1 Market Street", "city": "Berlin",
                             "postal_code": "10115", "country": "DE"},
        "items": [{"sku": "MUG-1", "name": "Mug", "quantity": 2, "unit_price": "9.50"}],
        "totals": {"currency": "EUR", "subtotal": "19.00", "tax": "3.61", "shipping": "4.90", "total": "27.51"},
    }
