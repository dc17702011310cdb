"""The FastAPI ``async def`` example of docs/library.md, taken from the doc itself and served by
FastAPI's test client (lifespan and requests on one event loop) against the emulator and SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ordertasks.infra.config import DEFAULT_CATALOG
from tests.docs.blocks import REPO, blocks_of
from tests.effects.orders import eur_order
from tests.library.test_order_tasks import emulator  # noqa: F401 - fixture
from tests.producer.conftest import Emulator


def documented_app() -> Any:
    """The ``app`` of the doc's async FastAPI block."""
    [block] = [b for b in blocks_of(REPO / "docs" / "library.md")
               if b.lang == "python" and "FastAPI(lifespan=lifespan)" in b.text]
    namespace: dict[str, Any] = {"__name__": "shop_async_fastapi_app"}
    exec(compile(block.text, block.where, "exec"), namespace)  # noqa: S102 - the doc's own example
    return namespace["app"]


@pytest.fixture
def kinds(tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:  # noqa: F811
    """The environment a shop's service would run with, on the local emulator; the catalog's kind count."""
    for name, value in {"ORDERTASKS_DATA_DIR": str(tmp_path), "CLOUD_TASKS_EMULATOR_HOST": emulator.host,
                        "ORDERTASKS_HANDLER_URL": "http://127.0.0.1:9/", "ORDERTASKS_OIDC_VERIFY": "false"}.items():
        monkeypatch.setenv(name, value)
    from ordertasks.handlers.config import load_catalog
    yield len(load_catalog(DEFAULT_CATALOG).kinds)


def test_the_async_fastapi_example_schedules_inspects_and_cancels(kinds: int) -> None:
    from fastapi.testclient import TestClient

    app = documented_app()
    with TestClient(app) as client:
        paid = client.post("/orders/ord_async_fastapi/paid", json=eur_order().model_dump(mode="json"))
        assert paid.status_code == 200, paid.text
        assert [t["state"] for t in paid.json()["tasks"]] == ["created"] * kinds
        view = client.get("/orders/ord_async_fastapi/tasks").json()
        assert view["status"] == "paid" and {t["state"] for t in view["tasks"]} == {"scheduled"}
        refunded = client.post("/orders/ord_async_fastapi/refunded").json()
        assert [t["state"] for t in refunded["tasks"]] == ["cancelled"] * kinds
        assert client.get("/orders/ord_never/tasks").status_code == 404
        channel = app.state.tasks.enqueuer.client.transport.grpc_channel
    assert str(channel.get_state()).endswith("SHUTDOWN")      # the lifespan closed it
