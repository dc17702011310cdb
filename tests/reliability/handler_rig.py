"""The handler on a real HTTP server over a chosen store, with real SMTP, warehouse and OIDC.

Like ``tests/functions/conftest.py`` but parametrized over the store backend (SQLite and
the Firestore emulator), and with helpers that count each effect where it lands.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from ordertasks.functions.main import build_handler
from ordertasks.handlers.contract import encode
from ordertasks.handlers.errors import DependencyUnavailable
from ordertasks.handlers.wiring import recorded_effects
from ordertasks.infra.config import Settings, load_catalog
from ordertasks.handlers.settings import OidcSettings, SmtpSettings, StoreSettings, TasksSettings
from ordertasks.infra.mailsink import MailSink
from ordertasks.infra.warehouse_standin import WarehouseStandIn
from tests.effects.orders import PLACED_AT, eur_order
from tests.functions.conftest import serve_flask
from tests.support.issuer import TestIssuer
from tests.support.orders import store_paid_order
from tests.support.servers import free_port, wait_until

DISPATCHER = load_catalog().service_account_email("dispatcher")
KINDS = ("send_confirmation_email", "record_analytics", "generate_invoice", "notify_warehouse")
QUEUE_OF = {kind: load_catalog().kinds[kind].queue for kind in KINDS}


def task_body(kind: str, order_id: str) -> bytes:
    """A task body (a reference) as the producer encodes it; ``Rig.place`` stores the order."""
    return encode(kind, order_id)


@dataclass
class Rig:
    """The handler under test and everything its effects touch."""

    url: str
    issuer: TestIssuer
    mail: MailSink
    warehouse: WarehouseStandIn
    store: Any
    blob_dir: Path
    settings: Settings | None = None

    def recorded(self) -> Any:
        """Effect states as the status views read them (create-once kinds' far ends included)."""
        return recorded_effects(self.settings or Settings(), self.store)

    def deliver(self, body: bytes, kind: str | None = None, retry_count: int = 0, token: str | None = "valid",
                headers: dict[str, str] | None = None, task_name: str = "t-1") -> requests.Response:
        """POST a delivery as Cloud Tasks would (fresh connection: deliveries are independent)."""
        sent = {"Content-Type": "application/json", "X-CloudTasks-TaskName": task_name,
                "X-CloudTasks-QueueName": QUEUE_OF.get(kind or "", ""),
                "X-CloudTasks-TaskRetryCount": str(retry_count), "User-Agent": "Google-Cloud-Tasks"}
        if token == "valid":
            token = self.issuer.token()
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        return requests.post(self.url, data=body, headers=sent, timeout=60)

    def place(self, *order_ids: str) -> None:
        """Store each order as paid (the sample EUR order), as the checkout would."""
        for order_id in order_ids:
            # A just-started Firestore emulator on a busy machine can time out its first writes.
            wait_until(lambda o=order_id: _placed(self.store, o), timeout=60, interval=0.2, what=f"{order_id} stored")

    def effects(self, order_id: str) -> dict[str, int]:
        """Each effect of ``order_id`` counted where it lands (POSTs, not just records, for the warehouse)."""
        return {
            "send_confirmation_email": sum(1 for m in self.mail.messages if m["X-Ordertasks-Order"] == order_id),
            "record_analytics": self.store.analytics.daily_aggregate(PLACED_AT.date()).orders,
            "generate_invoice": sum(1 for p in self.blob_dir.rglob("*.pdf") if p.stem == order_id),
            "notify_warehouse": self.warehouse.state.requests,
        }


def _placed(store: Any, order_id: str) -> bool:
    try:
        store_paid_order(store, order_id, eur_order())
    except DependencyUnavailable:
        return False
    return True


def make_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """A fresh store of ``backend``: SQLite file, or a fresh project on the Firestore emulator."""
    if backend == "sqlite":
        from ordertasks.handlers.backends.sqlite import SqliteStore

        return SqliteStore(tmp_path / "ordertasks.db")
    from ordertasks.handlers.backends.firestore import FirestoreStore
    from tests.contract.conftest import firestore_client_for, sanitized_project_id

    request.getfixturevalue("firestore_emulator")
    return FirestoreStore(firestore_client_for(sanitized_project_id()), timeout=20.0)


class RigFactory:
    """Starts handlers over given stores and stops everything they started."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[tuple[Any, Rig]] = []

    def __call__(self, store: Any, **changes: Any) -> Rig:
        """The handler over ``store`` (``changes`` go to ``Settings``), on a free port."""
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        issuer = TestIssuer(audience=url, email=DISPATCHER)
        mail = MailSink(port=free_port()).start()
        warehouse = WarehouseStandIn(port=free_port()).start()
        settings = Settings(store=StoreSettings(data_dir=self.tmp_path), tasks=TasksSettings(handler_url=url),
                            oidc=OidcSettings(certs_url=issuer.certs_url), smtp=SmtpSettings(port=mail.controller.port),
                            environment={"ORDERTASKS_WAREHOUSE_URL": warehouse.url + "/notifications",
                                         "ORDERTASKS_WAREHOUSE_TIMEOUT": "2"}).with_changes(**changes)
        server, _ = serve_flask(build_handler(settings, stores=store), port)
        rig = Rig(url, issuer, mail, warehouse, store, settings.store.blob_root, settings)
        self.started.append((server, rig))
        return rig

    def close(self) -> None:
        """Stop every handler and its dependencies."""
        for server, rig in self.started:
            server.shutdown()
            rig.mail.stop()
            rig.warehouse.stop()
            rig.issuer.stop()


@pytest.fixture
def rig_for(tmp_path: Path) -> Iterator[RigFactory]:
    """``rig_for(store)`` starts the handler over ``store``; everything stops after the test."""
    factory = RigFactory(tmp_path)
    yield factory
    factory.close()
