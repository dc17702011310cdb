"""``run_maintenance`` (reconcile and sweep for Cloud Scheduler) behind OIDC, on a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ordertasks.handlers.config import load_catalog
from ordertasks.producer.library import OrderTasks
from ordertasks.producer.maintenance import Maintenance, maintenance_verifier
from tests.functions.conftest import serve_flask
from tests.library.test_order_tasks import emulator, order  # noqa: F401 - fixture
from tests.producer.conftest import Emulator, make_settings
from tests.support.issuer import TestIssuer
from tests.support.servers import free_port

CATALOG = load_catalog()
# run_maintenance accepts the catalog's scheduler account (the dispatcher's when it names none).
SCHEDULER = CATALOG.service_account_email("scheduler" if "scheduler" in CATALOG.service_accounts else "dispatcher")


@pytest.fixture
def endpoint(tmp_path: Path, emulator: Emulator) -> Iterator[tuple[str, TestIssuer, OrderTasks]]:  # noqa: F811
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    issuer = TestIssuer(audience=url, email=SCHEDULER)
    settings = make_settings(tmp_path, emulator.host, oidc={"verify": True, "certs_url": issuer.certs_url},
                             tasks={"maintenance_url": url})
    tasks = OrderTasks.from_settings(settings)
    server, _ = serve_flask(Maintenance(tasks, maintenance_verifier(settings)), port)
    try:
        yield url, issuer, tasks
    finally:
        server.shutdown()  # type: ignore[attr-defined]
        tasks.close()
        issuer.stop()


def test_a_scheduler_token_runs_reconcile(endpoint: tuple[str, TestIssuer, OrderTasks], emulator: Emulator) -> None:  # noqa: F811
    url, issuer, tasks = endpoint
    emulator.stop()
    tasks.schedule(order("ord_maint_1"))
    emulator.start()
    answer = requests.post(url, json={"action": "reconcile", "grace_seconds": 0}, timeout=30,
                           headers={"Authorization": f"Bearer {issuer.token()}"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["action"] == "reconcile" and answer.json()["scheduled"] == len(tasks.kinds)
    sweep = requests.post(url, json={"action": "sweep"}, timeout=30, headers={"Authorization": f"Bearer {issuer.token()}"})
    assert sweep.status_code == 200 and sweep.json() == {"action": "sweep", "replayed": 0, "seen": 0}


@pytest.mark.parametrize("case, status", [("missing", 401), ("forged", 401), ("other_account", 403),
                                          ("wrong_audience", 401)])
def test_without_a_valid_scheduler_token_nothing_runs(endpoint: tuple[str, TestIssuer, OrderTasks],
                                                      emulator: Emulator, case: str, status: int) -> None:  # noqa: F811
    url, issuer, tasks = endpoint
    emulator.stop()
    tasks.schedule(order("ord_maint_2"))
    emulator.start()
    token = {"missing": None, "forged": issuer.unsigned_token(),
             "other_account": issuer.token(email="intruder@evil.iam.gserviceaccount.com"),
             "wrong_audience": issuer.token(aud="https://elsewhere.example/")}[case]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = requests.post(url, json={"action": "reconcile", "grace_seconds": 0}, headers=headers, timeout=30)
    assert answer.status_code == status, answer.text
    assert {t["state"] for t in tasks.status("ord_maint_2")["tasks"]} == {"pending"}


def test_an_unknown_action_is_a_400(endpoint: tuple[str, TestIssuer, OrderTasks]) -> None:
    url, issuer, _ = endpoint
    answer = requests.post(url, json={"action": "drop_tables"}, timeout=30,
                           headers={"Authorization": f"Bearer {issuer.token()}"})
    assert answer.status_code == 400 and "reconcile" in answer.json()["error"]
