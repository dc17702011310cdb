"""A real HTTP server running the task handler, with real SMTP, warehouse, store and certs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import flask
import pytest
import requests
from werkzeug.serving import make_server

from ordertasks.functions.main import build_handler
from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.handlers.contract import OrderSnapshot, encode
from ordertasks.infra.config import Settings, load_catalog
from ordertasks.handlers.settings import OidcSettings, SmtpSettings, StoreSettings, TasksSettings
from ordertasks.infra.mailsink import MailSink
from ordertasks.infra.warehouse_standin import WarehouseStandIn
from tests.effects.orders import eur_order
from tests.support.issuer import TestIssuer
from tests.support.orders import store_paid_order
from tests.support.servers import free_port

DISPATCHER = load_catalog().service_account_email("dispatcher")


@dataclass
class HandlerStack:
    """Everything a handler test looks at."""

    url: str
    issuer: TestIssuer
    mail: MailSink
    warehouse: WarehouseStandIn
    store: SqliteStore
    blob_dir: Path
    session: requests.Session

    def deliver(self, body: bytes, token: str | None = "valid", retry_count: int = 0,
                queue: str = "", task_name: str = "t-1", headers: dict[str, str] | None = None) -> requests.Response:
        """POST a delivery as Cloud Tasks would (a fresh valid token unless told otherwise)."""
        sent = {"Content-Type": "application/json", "X-CloudTasks-TaskName": task_name,
                "X-CloudTasks-QueueName": queue, "X-CloudTasks-TaskRetryCount": str(retry_count),
                "X-CloudTasks-TaskExecutionCount": str(retry_count), "User-Agent": "Google-Cloud-Tasks"}
        if token == "valid":
            token = self.issuer.token()
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        return self.session.post(self.url, data=body, headers=sent, timeout=30)

    def task(self, kind: str, order_id: str, snapshot: OrderSnapshot | None = None) -> bytes:
        """Store ``order_id`` as a paid order (once) and return the body of its ``kind`` task."""
        if self.store.orders.get_order(order_id) is None:
            store_paid_order(self.store, order_id, snapshot or eur_order())
        return encode(kind, order_id)

    def pdfs(self) -> list[Path]:
        """Invoice files written so far."""
        return sorted(self.blob_dir.rglob("*.pdf"))


def serve_flask(handler: object, port: int) -> tuple[object, threading.Thread]:
    """Serve ``handler(request)`` on 127.0.0.1:port in a thread (threaded WSGI server)."""
    app = flask.Flask("handler-under-test")
    app.add_url_rule("/", "handle", lambda: handler(flask.request), methods=["GET", "POST", "PUT"])  # type: ignore[operator]
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[HandlerStack]:
    """The handler on a free port with OIDC on, SQLite, a blob dir, SMTP and a warehouse."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    issuer = TestIssuer(audience=url, email=DISPATCHER)
    mail = MailSink(port=free_port()).start()
    warehouse = WarehouseStandIn(port=free_port()).start()
    settings = Settings(store=StoreSettings(data_dir=tmp_path), tasks=TasksSettings(handler_url=url),
                        oidc=OidcSettings(certs_url=issuer.certs_url), smtp=SmtpSettings(port=mail.controller.port),
                        environment={"ORDERTASKS_WAREHOUSE_URL": warehouse.url + "/notifications",
                                     "ORDERTASKS_WAREHOUSE_TIMEOUT": "2"})
    store = SqliteStore(settings.store.sqlite_file)
    server, _ = serve_flask(build_handler(settings, stores=store), port)
    session = requests.Session()
    handler_stack = HandlerStack(url, issuer, mail, warehouse, store, settings.store.blob_root, session)
    try:
        yield handler_stack
    finally:
        server.shutdown()  # type: ignore[attr-defined]
        stack_mail = handler_stack.mail
        stack_mail.stop()
        warehouse.stop()
        issuer.stop()
        session.close()
