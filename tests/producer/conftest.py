"""Fixtures for the producer: the real Cloud Tasks emulator, a SQLite store, the app.

The emulator runs as a subprocess on a free port with the catalog's queues; tests talk to it
with the real ``google-cloud-tasks`` REST client. Its queues are paused so that no task is
dispatched (nothing listens at the handler URL) and each task keeps the schedule time the
producer gave it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from google.cloud import tasks_v2
from werkzeug.serving import BaseWSGIServer, make_server

from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.infra.config import REPO_ROOT, Catalog, Settings
from ordertasks.handlers.settings import Backend, OidcSettings, StoreSettings, TasksSettings
from ordertasks.producer import wiring
from ordertasks.producer.checkout import create_app
from ordertasks.producer.enqueue import Enqueuer, queue_path
from ordertasks.producer.payments import LocalGateway
from ordertasks.producer.pricebook_sqlite import SqlitePriceBook
from ordertasks.producer.products import DEMO_CATALOGUE, import_file
from tests.support.samples import EUR_CHECKOUT_BODY
from tests.support.servers import ServerProcess, free_port, http_ok

CATALOG = REPO_ROOT / "infra" / "tasks.toml"
ORDER = EUR_CHECKOUT_BODY


def order_body(**changes: Any) -> dict[str, Any]:
    """A valid checkout body with top-level ``changes`` applied."""
    body = deepcopy(ORDER)
    body.update(changes)
    return body


def _healthy(port: int) -> bool:
    return http_ok(port)


class Emulator:
    """The Cloud Tasks emulator subprocess: stop and start it again on the same port and db."""

    def __init__(self, tmp: Path, latency_ms: int = 0) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "ordertasks.infra.emulator", "--port", str(self.port), "--db", str(tmp / "tasks.db"),
                "--queues", str(CATALOG), "--quiet"]
        if latency_ms:
            argv += ["--inject-latency-ms", str(latency_ms)]
        self.server = ServerProcess(argv, self.port, log_path=tmp / "emulator.log", ready=lambda: _healthy(self.port))

    def start(self) -> "Emulator":
        """Start and wait for ``/healthz``."""
        self.server.start(timeout=30)
        return self

    def stop(self) -> None:
        """Stop the process (its SQLite state stays)."""
        self.server.stop()


def make_settings(tmp: Path, emulator_host: str, **changes: Any) -> Settings:
    """Local settings on ``tmp`` and the emulator; the handler URL answers nothing."""
    base = Settings(backend=Backend.LOCAL, catalog_path=CATALOG,
                    store=StoreSettings(data_dir=tmp, sqlite_path=tmp / "orders.db"),
                    tasks=TasksSettings(emulator_host=emulator_host, handler_url="http://127.0.0.1:9/tasks",
                                        enqueue_timeout_seconds=5.0),
                    oidc=OidcSettings(verify=False))
    return base.with_changes(**changes)


def pause_all(client: Any, catalog: Catalog) -> None:
    """Pause every catalog queue so tasks stay put with their schedule times."""
    for queue in catalog.queues:
        client.pause_queue(name=queue_path(catalog.project, catalog.region, queue))


def list_all_tasks(client: Any, catalog: Catalog) -> list[tasks_v2.Task]:
    """Every task in the catalog's queues, FULL view (with bodies)."""
    tasks: list[tasks_v2.Task] = []
    for queue in catalog.queues:
        parent = queue_path(catalog.project, catalog.region, queue)
        tasks += client.list_tasks(request={"parent": parent, "response_view": tasks_v2.Task.View.FULL})
    return tasks


@dataclass
class Stack:
    """Everything a checkout test touches, all real: emulator, SQLite, gateway, app."""

    emulator: Emulator
    settings: Settings
    store: SqliteStore
    gateway: LocalGateway
    enqueuer: Enqueuer
    app: Flask

    @property
    def catalog(self) -> Catalog:
        """The catalog in use."""
        return self.enqueuer.catalog

    @property
    def client(self) -> FlaskClient:
        """A Flask test client."""
        return self.app.test_client()

    def tasks(self) -> list[tasks_v2.Task]:
        """All tasks in the emulator (FULL view)."""
        return list_all_tasks(self.enqueuer.client, self.catalog)


def build_stack(tmp: Path, emulator: Emulator, store: Any = None, **settings_changes: Any) -> Stack:
    """The app over a store (SQLite in ``tmp`` by default) and the running emulator."""
    settings = make_settings(tmp, emulator.host, **settings_changes)
    store = store or SqliteStore(settings.store.sqlite_file)
    # The price book the app wires by default (the order store's file), with the demo products.
    import_file(SqlitePriceBook(settings.store.sqlite_file), DEMO_CATALOGUE, if_empty=True)
    gateway = LocalGateway()
    enqueuer = wiring.enqueuer(settings)
    app = create_app(settings, store=store, enqueuer=enqueuer, gateway=gateway)
    return Stack(emulator, settings, store, gateway, enqueuer, app)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    """A running emulator with the catalog's queues, paused."""
    emu = Emulator(tmp_path).start()
    try:
        settings = make_settings(tmp_path, emu.host)
        pause_all(wiring.tasks_client(settings), settings.catalog())
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def stack(tmp_path: Path, emulator: Emulator) -> Iterator[Stack]:
    """The checkout app over SQLite and the emulator."""
    built = build_stack(tmp_path, emulator)
    try:
        yield built
    finally:
        built.enqueuer.close()
        built.store.close()


@pytest.fixture
def offline_stack(tmp_path: Path) -> Iterator[Stack]:
    """The app with Cloud Tasks pointing at a port nothing listens on (validation tests)."""
    emu = Emulator(tmp_path)  # never started
    built = build_stack(tmp_path, emu)
    try:
        yield built
    finally:
        built.enqueuer.close()
        built.store.close()


class LiveServer:
    """The app served by werkzeug's threaded server on a free port, in a thread."""

    def __init__(self, app: Flask) -> None:
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
