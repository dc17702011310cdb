"""The checkout app over a given order store, for requests that never reach Cloud Tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from ordertasks.handlers.config import DEFAULT_CATALOG, Settings
from ordertasks.handlers.settings import Backend, OidcSettings, StoreSettings, TasksSettings
from ordertasks.producer import wiring
from ordertasks.producer.checkout import create_app
from ordertasks.producer.payments import LocalGateway
from ordertasks.producer.pricebook_sqlite import SqlitePriceBook
from ordertasks.producer.products import DEMO_CATALOGUE, import_file
from tests.support.servers import free_port


def checkout_app(tmp: Path, store: Any) -> Flask:
    """Local settings in ``tmp`` (nothing listens at the Cloud Tasks address), the demo price book."""
    settings = Settings(backend=Backend.LOCAL, catalog_path=DEFAULT_CATALOG,
                        store=StoreSettings(data_dir=tmp, sqlite_path=tmp / "orders.db"),
                        tasks=TasksSettings(emulator_host=f"127.0.0.1:{free_port()}", enqueue_timeout_seconds=1.0),
                        oidc=OidcSettings(verify=False))
    book = SqlitePriceBook(tmp / "prices.db")
    import_file(book, DEMO_CATALOGUE, if_empty=True)
    return create_app(settings, store=store, enqueuer=wiring.enqueuer(settings), gateway=LocalGateway(),
                      price_book=book)
