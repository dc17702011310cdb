"""One order from the checkout through (in-process) Cloud Tasks to the real handler, traced
into the OpenTelemetry SDK's in-memory exporter; the far ends are real servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flask
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ordertasks.functions.main import TaskHandler, build_handler
from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.handlers.kind import SystemClock
from ordertasks.handlers.otel import OtelTracing
from ordertasks.handlers.settings import Backend, OidcSettings, SmtpSettings, StoreSettings, TasksSettings
from ordertasks.infra.config import REPO_ROOT, Settings
from ordertasks.infra.mailsink import MailSink
from ordertasks.infra.warehouse_standin import WarehouseStandIn
from ordertasks.producer.checkout import create_app
from ordertasks.producer.enqueue import Enqueuer
from ordertasks.producer.inprocess_tasks import InProcessCloudTasks, QueuedTask
from ordertasks.producer.payments import LocalGateway
from ordertasks.producer.pricebook_sqlite import SqlitePriceBook
from ordertasks.producer.products import DEMO_CATALOGUE, import_file
from tests.support.servers import free_port

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@dataclass
class TracedStack:
    """The checkout, the queues held in process, the handler, and the spans they made."""

    app: flask.Flask
    queues: InProcessCloudTasks
    handler: TaskHandler
    warehouse: WarehouseStandIn
    exporter: InMemorySpanExporter

    def checkout(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
        """POST the checkout; the new order's id."""
        answer = self.app.test_client().post("/api/checkout", json=body, headers=headers or {})
        assert answer.status_code == 201, answer.get_json()
        return str(answer.get_json()["order_id"])

    def deliver(self, queued: QueuedTask, retry_count: int = 0) -> int:
        """Deliver ``queued`` to the handler as Cloud Tasks would (its headers, its body): the status."""
        task = queued.task
        headers = dict(task.http_request.headers)
        headers.update({"X-CloudTasks-TaskName": task.name.rsplit("/", 1)[1],
                        "X-CloudTasks-QueueName": task.name.split("/")[5],
                        "X-CloudTasks-TaskRetryCount": str(retry_count)})
        shell = flask.Flask("deliver")
        with shell.test_request_context("/", method="POST", data=task.http_request.body, headers=headers):
            return self.handler(flask.request).status_code

    def deliver_all(self) -> list[int]:
        """Deliver every held task once."""
        return [self.deliver(q) for q in self.queues.due(SystemClock().now())]

    def spans(self) -> list[ReadableSpan]:
        """Every span finished so far."""
        return list(self.exporter.get_finished_spans())


def traced_settings(tmp: Path, mail_port: int, warehouse_url: str) -> Settings:
    """Local settings: no delays, no token checks, real SMTP and warehouse on loopback."""
    return Settings(backend=Backend.LOCAL, catalog_path=REPO_ROOT / "infra" / "tasks.toml",
                    store=StoreSettings(data_dir=tmp, sqlite_path=tmp / "orders.db"),
                    tasks=TasksSettings(handler_url="http://127.0.0.1:9/", delay_scale=0.0),
                    oidc=OidcSettings(verify=False), smtp=SmtpSettings(port=mail_port),
                    environment={"ORDERTASKS_WAREHOUSE_URL": warehouse_url + "/notifications",
                                 "ORDERTASKS_WAREHOUSE_TIMEOUT": "2"})


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """The SDK's in-memory exporter."""
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> OtelTracing:
    """Tracing into ``exporter`` through a provider of the test's own (not the process's)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OtelTracing(provider.get_tracer("tests"))


@pytest.fixture
def traced(tmp_path: Path, tracing: OtelTracing, exporter: InMemorySpanExporter) -> Iterator[TracedStack]:
    """The whole traced stack."""
    mail = MailSink(port=free_port(), directory=tmp_path / "mail").start()
    warehouse = WarehouseStandIn(port=free_port()).start()
    settings = traced_settings(tmp_path, mail.controller.port, warehouse.url)
    catalog = settings.catalog()
    store = SqliteStore(settings.store.sqlite_file)
    import_file(SqlitePriceBook(settings.store.sqlite_file), DEMO_CATALOGUE, if_empty=True)
    queues = InProcessCloudTasks(catalog, SystemClock())
    enqueuer = Enqueuer(queues, settings, catalog, tracing=tracing)
    app = create_app(settings, store=store, enqueuer=enqueuer, gateway=LocalGateway())
    handler = build_handler(settings, stores=store, tracing=tracing)
    try:
        yield TracedStack(app, queues, handler, warehouse, exporter)
    finally:
        enqueuer.close()
        store.close()
        mail.stop()
        warehouse.stop()
