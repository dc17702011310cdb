"""Sample orders, seller and a fixed clock for the side-effect tests."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ordertasks.handlers.contract import OrderSnapshot, Task
from ordertasks.handlers.kind import Seller
from tests.support import orders as placed

SELLER = Seller(name="Grünwald & Söhne GmbH", address="Marktstraße 1, 10115 Berlin, DE",
                tax_id="DE123456789", mail_from="Grünwald Shop <orders@gruenwald.example>")
PLACED_AT = datetime(2024, 3, 1, 23, 30, tzinfo=timezone.utc)


class FixedClock:
    """A clock that always says the same time (tests control time, never sleep)."""

    def __init__(self, now: datetime = datetime(2024, 3, 2, 9, 0, tzinfo=timezone.utc)) -> None:
        self.current = now

    def now(self) -> datetime:
        """The fixed time."""
        return self.current


def eur_order(customer_name: str = "Zoë Müller-Łukasiewicz") -> OrderSnapshot:
    """An EUR order with thousands, a multi-unit line and a repeated SKU."""
    return OrderSnapshot.model_validate({
        "placed_at": PLACED_AT.isoformat(),
        "customer": {"name": customer_name, "email": "zoe@example.com"},
        "shipping_address": {"name": customer_name, "line1": "Rue de l'Église 7", "line2": "Bâtiment B",
                             "city": "Lyon", "postal_code": "69002", "country": "FR"},
        "items": [
            {"sku": "DESK-OAK", "name": "Oak desk “Nordic”", "quantity": 1, "unit_price": "999.00"},
            {"sku": "LAMP-01", "name": "Desk lamp <brass>", "quantity": 2, "unit_price": "49.95"},
            {"sku": "CABLE-2M", "name": "Cable clip", "quantity": 3, "unit_price": "1.20"},
            {"sku": "LAMP-01", "name": "Desk lamp <brass> (spare)", "quantity": 1, "unit_price": "49.95"},
        ],
        "totals": {"currency": "EUR", "subtotal": "1152.45", "tax": "218.97", "shipping": "12.50",
                   "total": "1383.92"},
        "tax_rate": "0.19",
    })


def jpy_order() -> OrderSnapshot:
    """A JPY order: no minor unit."""
    return OrderSnapshot.model_validate({
        "placed_at": "2024-03-01T23:30:00+09:00",
        "customer": {"name": "山田 太郎", "email": "taro@example.jp"},
        "shipping_address": {"name": "Yamada Taro", "line1": "1-1 Chiyoda", "city": "Tokyo",
                             "postal_code": "100-0001", "country": "JP"},
        "items": [{"sku": "TEA-1", "name": "Matcha", "quantity": 3, "unit_price": "1200"}],
        "totals": {"currency": "JPY", "subtotal": "3600", "tax": "360", "shipping": "500", "total": "4460"},
        "tax_rate": "0.1",
    })


def kwd_order() -> OrderSnapshot:
    """A KWD order: three decimals (fils), no shipping address (collected in store)."""
    return OrderSnapshot.model_validate({
        "placed_at": "2024-03-01T10:00:00+03:00",
        "customer": {"name": "Noor Al-Sabah", "email": "noor@example.com"},
        "items": [{"sku": "DATES-1", "name": "Dates", "quantity": 2, "unit_price": "4.125"},
                  {"sku": "COFFEE-1", "name": "Arabic coffee", "quantity": 1, "unit_price": "1.500"}],
        "totals": {"currency": "KWD", "subtotal": "9.750", "tax": "0.488", "shipping": "2.107", "total": "12.345"},
        "tax_rate": "0.05",
    })


def digital_order(**metadata: Any) -> OrderSnapshot:
    """An EUR order of an e-book: no shipping address, the shop's own ``metadata``."""
    return OrderSnapshot.model_validate({
        "placed_at": PLACED_AT.isoformat(),
        "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "items": [{"sku": "EBOOK-1", "name": "Notes on the Analytical Engine", "quantity": 1, "unit_price": "9.99"}],
        "totals": {"currency": "EUR", "subtotal": "9.99", "tax": "0.70", "shipping": "0", "total": "10.69"},
        "tax_rate": "0.07",
        "metadata": metadata,
    })


def task_for(kind: str, order_id: str, order: OrderSnapshot) -> Task:
    """The task the handler would perform for ``kind`` of ``order`` (the kind's real projection)."""
    return placed.task_for(kind, order_id, order)


def data_of(kind: str, order: OrderSnapshot) -> dict[str, Any]:
    """The JSON data ``kind`` sees of ``order``."""
    data: dict[str, Any] = placed.task_for(kind, "ord-sample", order).data.model_dump(mode="json")
    return data
