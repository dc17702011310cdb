"""Console fixtures: a real emulator with the catalog's queues, an SQLite store, the app.

Replays go to the handler named in the stack record (as ``ordertasks dev`` writes it),
while ``Settings.tasks.handler_url`` names another URL: the tests check the replay used the
record, never the operator's settings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.handlers.contract import encode
from ordertasks.handlers.ports import FailureReport
from ordertasks.infra.config import Settings
from ordertasks.handlers.settings import Backend, StoreSettings, TasksSettings
from ordertasks.infra.console import Console, console_from_settings, create_app
from ordertasks.producer.enqueue import task_name
from ordertasks.producer.replay_target import write_stack_record
from tests.emulator.conftest import Emulator, start_emulator
from tests.support.samples import fast_catalog

RECORDED_HANDLER = "http://127.0.0.1:9/recorded-handler/"
OPERATOR_SHELL_HANDLER = "http://127.0.0.1:9/operator-shell/"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="session")
def catalog_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fast_catalog(tmp_path_factory.mktemp("catalog"))


@pytest.fixture(scope="session")
def tasks_emulator(tmp_path_factory: pytest.TempPathFactory, catalog_path: Path) -> Iterator[Emulator]:
    """An emulator holding the catalog's queues."""
    emu = start_emulator(tmp_path_factory.mktemp("console-emulator"), extra=["--queues", str(catalog_path)])
    try:
        yield emu
    finally:
        emu.process.stop()


@dataclass
class ConsoleUnderTest:
    """The console, its store and a Flask test client."""

    console: Console
    store: SqliteStore
    settings: Settings
    client: Any

    def token(self, path: str) -> str:
        """The CSRF token of the form on ``path`` (as a browser gets it)."""
        page = self.client.get(path)
        assert page.status_code == 200, page.text
        match = TOKEN.search(page.text)
        assert match, f"no form with a CSRF token on {path}"
        return match.group(1)


@pytest.fixture
def cut(tmp_path: Path, catalog_path: Path, tasks_emulator: Emulator) -> Iterator[ConsoleUnderTest]:
    settings = Settings(backend=Backend.LOCAL, catalog_path=catalog_path, store=StoreSettings(data_dir=tmp_path),
                        tasks=TasksSettings(emulator_host=f"127.0.0.1:{tasks_emulator.port}",
                                            handler_url=OPERATOR_SHELL_HANDLER))
    write_stack_record(tmp_path, RECORDED_HANDLER, f"127.0.0.1:{tasks_emulator.port}", "http://127.0.0.1:8088/")
    console = console_from_settings(settings)         # the wiring `ordertasks console` uses
    store = SqliteStore(settings.store.sqlite_file)    # the test's own view of the console's database
    app = create_app(console)
    yield ConsoleUnderTest(console, store, settings, app.test_client())
    store.close()


def failure(order_id: str, kind: str, error: str = "warehouse answered 422: unknown SKU",
            error_type: str = "Rejected", catalog: Any = None) -> FailureReport:
    """A final failure of ``kind`` for ``order_id``, as the handler reports it."""
    queue = catalog.kinds[kind].queue if catalog else "ordertasks-warehouse"
    project, region = (catalog.project, catalog.region) if catalog else ("p", "l")
    return FailureReport(order_id, kind, queue, task_name(project, region, queue, order_id, kind),
                         json.loads(encode(kind, order_id)), error_type, error, 8, datetime.now(UTC))
