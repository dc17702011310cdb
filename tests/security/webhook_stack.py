"""Shared by the issue-28 secret tests: a handler over the webhook environment a test gives,
a far end that echoes our headers back, and the operator's view of the failed-task log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from ordertasks.functions.main import build_handler
from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.handlers.settings import OidcSettings, SmtpSettings, StoreSettings, TasksSettings
from ordertasks.infra.config import Settings
from ordertasks.infra.mailsink import MailSink
from ordertasks.infra.warehouse_standin import WarehouseStandIn
from tests.functions.conftest import DISPATCHER, HandlerStack, serve_flask
from tests.support.issuer import TestIssuer
from tests.support.servers import free_port

REPO = Path(__file__).resolve().parents[2]
KIND = "notify_warehouse"
TOKEN = "sk_live_TOKEN-0123456789"
PASSWORD = "PASS-WORD-9876"
API_KEY = "API-KEY-55555"
SECRETS = (TOKEN, PASSWORD, API_KEY)


class Echo:
    """A far end that refuses with 401 and echoes the request's headers back (as some do)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body = json.dumps({"error": "unauthorized", "you_sent": dict(self.headers.items())}).encode()
                self.send_response(401)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()


StackFactory = Callable[..., HandlerStack]


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[StackFactory]:
    """The handler of ``tests/functions`` with the webhook environment (and effects) a test gives."""
    stops: list[Callable[[], None]] = []

    def build(environment: dict[str, str], **parts: Any) -> HandlerStack:
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        issuer, mail = TestIssuer(audience=url, email=DISPATCHER), MailSink(port=free_port()).start()
        warehouse = WarehouseStandIn(port=free_port()).start()
        settings = Settings(store=StoreSettings(data_dir=tmp_path), tasks=TasksSettings(handler_url=url),
                            oidc=OidcSettings(certs_url=issuer.certs_url), smtp=SmtpSettings(port=mail.controller.port),
                            environment={"ORDERTASKS_WAREHOUSE_TIMEOUT": "2", **environment})
        store = SqliteStore(settings.store.sqlite_file)
        server, _ = serve_flask(build_handler(settings, stores=store, **parts), port)
        stops.extend([server.shutdown, mail.stop, warehouse.stop, issuer.stop])  # type: ignore[attr-defined]
        return HandlerStack(url, issuer, mail, warehouse, store, settings.store.blob_root, requests.Session())

    yield build
    for stop in stops:
        stop()


def cli(data_dir: Path, *args: str) -> str:
    """``ordertasks …`` as an operator runs it, over the test's data directory; stdout and stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERTASKS_", "CLOUD_TASKS_"))}
    done = subprocess.run([sys.executable, str(REPO / "cli.py"), *args], env={**env, "ORDERTASKS_DATA_DIR": str(data_dir)},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def assert_nowhere(texts: list[str]) -> None:
    for text in texts:
        leaked = [secret for secret in SECRETS if secret in text]
        assert not leaked, f"{leaked} in {text[:400]!r}"


def record_texts(stack: HandlerStack, order: str) -> list[str]:
    """The failed record's error and every history entry's error."""
    record = stack.store.failed.get_failed(f"{order}:{KIND}")
    assert record is not None
    return [record.error, *(str(entry.get("error", "")) for entry in record.history)]
