"""The shop examples that use the transactional outbox: FastAPI with SQLAlchemy
(``examples/fastapi_checkout/outbox_app.py``) and Django's ``transaction.atomic`` with
``on_commit`` (in a process of its own: Django's settings are once per process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ordertasks.infra.config import REPO_ROOT
from tests.library.test_examples import load
from tests.outbox.conftest import ShopDatabase, environment, order, shop_database, task_names
from tests.producer.conftest import Emulator


def test_the_fastapi_outbox_checkout_commits_order_and_effects_together(
        tmp_path: Path, emulator: Emulator, shop: ShopDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    for name, value in environment(tmp_path, emulator, shop).items():
        monkeypatch.setenv(name, value)
    app = load(REPO_ROOT / "examples" / "fastapi_checkout" / "outbox_app.py", f"shop_outbox_app_{shop.dialect}")
    body = {k: v for k, v in order("ord_fastapi_outbox").items() if k != "order_id"}
    try:
        with TestClient(app.app) as client:
            paid = client.post("/orders/ord_fastapi_outbox/paid", json=body)
            assert paid.status_code == 200, paid.text
            assert {t["state"] for t in paid.json()["tasks"]} == {"pending"}
            view = client.get("/orders/ord_fastapi_outbox/tasks").json()      # the background relay ran
            assert view["status"] == "paid" and {t["state"] for t in view["tasks"]} == {"scheduled"}
            again = client.post("/orders/ord_fastapi_outbox/paid", json=body)
            assert again.status_code == 409                                   # rolled back: nothing more
        assert len(task_names(app.tasks)) == len(app.tasks.kinds)
    finally:
        app.tasks.close()
        app.engine.dispose()


DJANGO_SHOP = """
import sys
import django
from django.conf import settings
settings.configure(DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": sys.argv[1]}})
django.setup()
from django.db import connection, transaction
from ordertasks import OrderTasks
from tests.outbox.conftest import order

tasks = OrderTasks.from_env()
with transaction.atomic():
    tasks.schedule(order("ord_django_rolled_back"), transaction=connection)
    transaction.set_rollback(True)
with transaction.atomic():
    tasks.schedule(order("ord_django_outbox"), transaction=connection)
    transaction.on_commit(lambda: print(tasks.relay().line()))
tasks.close()
"""


def test_django_schedules_inside_atomic_and_relays_on_commit(tmp_path: Path, emulator: Emulator,
                                                             request: pytest.FixtureRequest) -> None:
    shop = shop_database("sqlite", tmp_path, request)
    done = subprocess.run([sys.executable, "-c", DJANGO_SHOP, shop.url.removeprefix("sqlite:///")], timeout=120,
                          env=environment(tmp_path, emulator, shop), cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "relay: 1 order(s) relayed" in done.stdout, done.stdout
    assert (shop.counts().waiting, shop.counts().relayed) == (0, 1)
