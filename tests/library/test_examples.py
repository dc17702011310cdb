"""The FastAPI and Django examples of docs/library.md, run against the emulator and SQLite."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ordertasks.infra.config import DEFAULT_CATALOG, REPO_ROOT
from tests.effects.orders import eur_order
from tests.library.test_order_tasks import emulator  # noqa: F401 - fixture
from tests.producer.conftest import Emulator

EXAMPLES = REPO_ROOT / "examples"


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture
def shop_env(tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:  # noqa: F811
    """The environment a shop's service would run with, on the local emulator."""
    for name, value in {"ORDERTASKS_DATA_DIR": str(tmp_path), "CLOUD_TASKS_EMULATOR_HOST": emulator.host,
                        "ORDERTASKS_HANDLER_URL": "http://127.0.0.1:9/", "ORDERTASKS_OIDC_VERIFY": "false"}.items():
        monkeypatch.setenv(name, value)
    from ordertasks.handlers.config import load_catalog
    yield len(load_catalog(DEFAULT_CATALOG).kinds)


def snapshot() -> dict[str, Any]:
    return eur_order().model_dump(mode="json")


def test_the_fastapi_checkout_schedules_inspects_and_cancels(shop_env: int) -> None:
    from fastapi.testclient import TestClient

    app = load(EXAMPLES / "fastapi_checkout" / "app.py", "shop_fastapi_app")
    with TestClient(app.app) as client:
        paid = client.post("/orders/ord_fastapi_1/paid", json=snapshot())
        assert paid.status_code == 200, paid.text
        assert [t["state"] for t in paid.json()["tasks"]] == ["created"] * shop_env
        view = client.get("/orders/ord_fastapi_1/tasks").json()
        assert view["status"] == "paid" and {t["state"] for t in view["tasks"]} == {"scheduled"}
        refunded = client.post("/orders/ord_fastapi_1/refunded").json()
        assert [t["state"] for t in refunded["tasks"]] == ["cancelled"] * shop_env
        assert client.get("/orders/ord_never/tasks").status_code == 404
    app.tasks.close()


def test_the_django_views_schedule_and_inspect(shop_env: int) -> None:
    import django
    from django.conf import settings

    views = load(EXAMPLES / "django_checkout" / "views.py", "shop_django_views")
    if not settings.configured:
        settings.configure(ROOT_URLCONF="shop_django_views", ALLOWED_HOSTS=["testserver"], DEBUG=False)
        django.setup()
    from django.test import Client

    client = Client()
    paid = client.post("/orders/ord_django_1/paid", data=snapshot(), content_type="application/json")
    assert paid.status_code == 200, paid.content
    assert [t["state"] for t in paid.json()["tasks"]] == ["created"] * shop_env
    assert {t["state"] for t in client.get("/orders/ord_django_1/tasks").json()["tasks"]} == {"scheduled"}
    assert client.get("/orders/ord_never/tasks").status_code == 404
    views.tasks.close()
