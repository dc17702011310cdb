"""Start-up failures of the lazily built entry points answer 503 with ``Retry-After``, never a
500 with a traceback, and the next request builds again (issue 27).

Both entry points run as Cloud Run serves them: functions-framework's app over the root
``main.py``, configured from the process environment. The faults are real: a SQLite file
another connection holds an exclusive lock on, a data directory that is a regular file.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from ordertasks.functions import main as functions_main
from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.handlers.contract import encode
from ordertasks.infra.config import REPO_ROOT, load_catalog
from ordertasks.producer import maintenance
from tests.effects.orders import eur_order
from tests.functions.conftest import DISPATCHER
from tests.support.issuer import TestIssuer
from tests.support.orders import store_paid_order
from tests.support.servers import free_port
from tests.support.stores import locked_sqlite

URL = "http://handler.test/"
CATALOG = load_catalog()
SCHEDULER = CATALOG.service_account_email("scheduler" if "scheduler" in CATALOG.service_accounts else "dispatcher")
# wiring.build_stores opens SQLite with open_database's default busy_timeout (5 s): the
# handler's first request waits that long on the locked file before it answers 503.
STORE_BUSY_TIMEOUT = 5.0
CONCURRENT_FIRST_REQUESTS = 4


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A process environment naming only this test's data dir, and entry points not yet built."""
    for name in list(os.environ):
        if name.startswith("ORDERTASKS_") or name in ("CLOUD_TASKS_EMULATOR_HOST", "FUNCTION_TARGET"):
            monkeypatch.delenv(name)
    data = tmp_path / "data"
    monkeypatch.setenv("ORDERTASKS_DATA_DIR", str(data))
    monkeypatch.setenv("ORDERTASKS_HANDLER_URL", URL)
    # No emulator listens here: building a tasks client must not need one.
    monkeypatch.setenv("CLOUD_TASKS_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    monkeypatch.setattr(functions_main, "_handler", None)
    monkeypatch.setattr(functions_main, "_failure", None)
    monkeypatch.setattr(maintenance, "_endpoint", None)
    yield data
    if isinstance(maintenance._endpoint, maintenance.Maintenance):
        maintenance._endpoint.tasks.close()


def issuer_for(monkeypatch: pytest.MonkeyPatch, email: str) -> Iterator[TestIssuer]:
    """A token issuer for ``URL`` whose certificates the entry points are told to fetch."""
    issuer = TestIssuer(audience=URL, email=email)
    monkeypatch.setenv("ORDERTASKS_OIDC_CERTS_URL", issuer.certs_url)
    try:
        yield issuer
    finally:
        issuer.stop()


@pytest.fixture
def dispatcher(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestIssuer]:
    """Tokens from the dispatcher's service account (Cloud Tasks)."""
    yield from issuer_for(monkeypatch, DISPATCHER)


@pytest.fixture
def scheduler(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestIssuer]:
    """Tokens from the scheduler's service account (Cloud Scheduler)."""
    yield from issuer_for(monkeypatch, SCHEDULER)


def framework_client(monkeypatch: pytest.MonkeyPatch, target: str) -> FlaskClient:
    """functions-framework's app for ``target`` in the root ``main.py``, as Cloud Run loads it."""
    monkeypatch.setenv("FUNCTION_TARGET", target)
    # create_app puts the source in sys.modules["main"] and its folder on sys.path: undone at teardown.
    monkeypatch.setitem(sys.modules, "main", None)
    monkeypatch.setattr(sys, "path", list(sys.path))
    app = functions_framework.create_app(target=target, source=str(REPO_ROOT / "main.py"))  # type: ignore[no-untyped-call]
    return app.test_client()


def deliver(client: FlaskClient, issuer: TestIssuer, kind: str, order_id: str) -> TestResponse:
    """POST a task as Cloud Tasks would."""
    return client.post("/", data=encode(kind, order_id), headers={
        "Content-Type": "application/json", "X-CloudTasks-TaskName": f"t-{order_id}",
        "X-CloudTasks-TaskRetryCount": "0", "Authorization": f"Bearer {issuer.token()}"})


def assert_startup_refusal(answer: TestResponse, cause: str) -> None:
    """503, a ``Retry-After`` of whole seconds, a JSON body naming ``cause`` and no traceback."""
    assert answer.status_code == 503, answer.get_data(as_text=True)
    assert int(answer.headers["Retry-After"]) >= 1
    assert answer.is_json and set(answer.get_json()) == {"error"}
    assert cause in answer.get_json()["error"]
    assert "Traceback" not in answer.get_data(as_text=True)
    assert answer.headers.get("X-Google-Status") != "crash"   # functions-framework's mark of a 500


def log_entries(out: str, severity: str) -> list[dict[str, Any]]:
    """The JSON log lines at ``severity`` in captured stdout."""
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [entry for entry in lines if entry.get("severity") == severity]


def paid_order(data: Path, order_id: str) -> Path:
    """Store ``order_id`` as paid in the data dir's SQLite file; the file's path."""
    path = data / "ordertasks.db"
    data.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(path)
    try:
        store_paid_order(store, order_id, eur_order())
    finally:
        store.close()
    return path


def concurrently(count: int, call: Any) -> list[TestResponse]:
    """``call()`` from ``count`` threads released together; their answers."""
    answers: list[TestResponse] = []
    start = threading.Barrier(count)

    def one() -> None:
        start.wait()
        answers.append(call())

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def test_a_locked_store_at_the_first_request_answers_503_and_the_retry_is_served(
        data_dir: Path, dispatcher: TestIssuer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    sqlite_file = paid_order(data_dir, "ord_locked_1")
    app = framework_client(monkeypatch, "handle_task")
    with locked_sqlite(sqlite_file, busy_timeout=0.1):
        started = time.monotonic()
        answers = concurrently(CONCURRENT_FIRST_REQUESTS,
                               lambda: deliver(app, dispatcher, "record_analytics", "ord_locked_1"))
        waited = time.monotonic() - started
    assert len(answers) == CONCURRENT_FIRST_REQUESTS
    for answer in answers:
        assert_startup_refusal(answer, "a dependency is unavailable")
    # The requests that queued behind the failing build got its error: one busy_timeout, not four.
    assert waited < 3 * STORE_BUSY_TIMEOUT, waited
    errors = log_entries(capsys.readouterr().out, "ERROR")
    assert len(errors) == CONCURRENT_FIRST_REQUESTS
    assert all(e["error_type"] == "DependencyUnavailable" and "SQLite store" in e["message"] for e in errors), errors
    retried = deliver(app, dispatcher, "record_analytics", "ord_locked_1")
    assert retried.status_code == 200, retried.get_data(as_text=True)
    assert retried.get_json()["outcome"] == "done"


def test_an_unexpected_build_error_answers_503_and_the_next_request_builds_again(
        data_dir: Path, dispatcher: TestIssuer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    data_dir.write_text("a file where the data directory should be\n")
    app = framework_client(monkeypatch, "handle_task")
    assert_startup_refusal(deliver(app, dispatcher, "record_analytics", "ord_unexpected_1"), "an unexpected error")
    [error] = log_entries(capsys.readouterr().out, "ERROR")
    assert error["error_type"] == "FileExistsError" and "FileExistsError" in error["message"], error
    data_dir.unlink()
    paid_order(data_dir, "ord_unexpected_1")
    retried = deliver(app, dispatcher, "record_analytics", "ord_unexpected_1")
    assert retried.status_code == 200 and retried.get_json()["outcome"] == "done", retried.get_data(as_text=True)


def test_a_bad_setting_still_answers_503_with_a_critical_log(
        data_dir: Path, dispatcher: TestIssuer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text("[kinds.crm]\nqueue = \"q-shop\"\n" * 2)   # a table declared twice: not valid TOML
    monkeypatch.setenv("ORDERTASKS_CONFIG", str(catalog))
    app = framework_client(monkeypatch, "handle_task")
    answer = deliver(app, dispatcher, "record_analytics", "ord_config_1")
    assert_startup_refusal(answer, "misconfigured")
    assert answer.headers["Retry-After"] == "60"
    [critical] = log_entries(capsys.readouterr().out, "CRITICAL")
    assert "not valid TOML" in critical["message"] and "handler not started" in critical["message"], critical


def sweep(client: FlaskClient, issuer: TestIssuer) -> TestResponse:
    """Cloud Scheduler's sweep call."""
    return client.post("/", json={"action": "sweep"}, headers={"Authorization": f"Bearer {issuer.token()}"})


def test_maintenance_answers_503_on_a_locked_store_and_builds_on_the_next_request(
        data_dir: Path, scheduler: TestIssuer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    sqlite_file = paid_order(data_dir, "ord_maint_locked_1")
    app = framework_client(monkeypatch, "run_maintenance")
    with locked_sqlite(sqlite_file, busy_timeout=0.1):
        assert_startup_refusal(sweep(app, scheduler), "a dependency is unavailable")
    [error] = log_entries(capsys.readouterr().out, "ERROR")
    assert error["error_type"] == "DependencyUnavailable" and "maintenance not started" in error["message"]
    retried = sweep(app, scheduler)
    assert retried.status_code == 200, retried.get_data(as_text=True)
    assert retried.get_json() == {"action": "sweep", "replayed": 0, "seen": 0}


def test_maintenance_answers_503_on_an_unexpected_build_error(
        data_dir: Path, scheduler: TestIssuer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    data_dir.write_text("a file where the data directory should be\n")
    app = framework_client(monkeypatch, "run_maintenance")
    assert_startup_refusal(sweep(app, scheduler), "an unexpected error")
    [error] = log_entries(capsys.readouterr().out, "ERROR")
    assert error["error_type"] == "FileExistsError", error
    data_dir.unlink()
    assert sweep(app, scheduler).status_code == 200
