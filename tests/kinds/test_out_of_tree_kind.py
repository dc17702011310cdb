"""A shop's own kinds, outside the package, through the real dev stack (examples/loyalty).

The code kind's module is copied to a temporary directory on PYTHONPATH (never inside the
repo) and the catalog copy adds its table and a webhook kind's: zero edits to the package.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from ordertasks.handlers.config import load_catalog
from ordertasks.infra.config import REPO_ROOT
from tests.devstack.conftest import DevStack, dev_argv, place_order
from tests.support.samples import fast_catalog
from tests.support.servers import ServerProcess, free_port, wait_until

EXAMPLE = REPO_ROOT / "examples" / "loyalty"
CODE_KIND, WEBHOOK_KIND, QUEUE = "award_loyalty_points", "sync_crm", "ordertasks-loyalty"
TOKEN = "crm-token-for-tests"


def _loyalty_api() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("loyalty_api", EXAMPLE / "loyalty_api.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.LoyaltyApi


@dataclass
class Shop:
    """The dev stack running the shop's catalog, and the shop's loyalty API."""

    dev: DevStack
    api: Any

    def received(self, order_id: str, path: str) -> list[dict[str, Any]]:
        """Requests the loyalty API got for ``order_id`` on ``path`` (accepted or not)."""
        with self.api.lock:
            return [r for r in self.api.received if r["path"] == path and r["body"].get("order_id") == order_id]

    def tasks(self, order_id: str) -> dict[str, dict[str, Any]]:
        """kind → task entry of ``GET /api/orders/{id}``."""
        return {t["kind"]: t for t in self.dev.order(order_id)["tasks"]}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    root = tmp_path_factory.mktemp("shop")
    code = root / "shop_code"
    code.mkdir()
    shutil.copy(EXAMPLE / "loyalty.py", code / "loyalty.py")       # outside the repo, on PYTHONPATH
    config = fast_catalog(root, source=EXAMPLE / "tasks.toml")
    api = _loyalty_api()(free_port()).serve()
    data_dir = root / "var"
    data_dir.mkdir()
    ports = {name: free_port() for name in ("emulator", "handler", "checkout", "smtp", "warehouse", "console")}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(code), str(REPO_ROOT)]),
           "LOYALTY_URL": f"http://127.0.0.1:{api.server.server_port}/points",
           "CRM_URL": f"http://127.0.0.1:{api.server.server_port}/crm", "CRM_TOKEN": TOKEN}
    server = ServerProcess(dev_argv(data_dir, config, ports), ports["checkout"], env=env,
                           log_path=root / "dev.log", ready=lambda: _answers(ports["checkout"]))
    server.start(timeout=120)
    dev = DevStack(data_dir, config, ports, server, extra_env={k: env[k] for k in ("PYTHONPATH", "CRM_URL", "CRM_TOKEN")})
    try:
        yield Shop(dev, api)
    finally:
        server.stop()
        api.stop()


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).ok
    except requests.RequestException:
        return False


def test_the_code_kind_runs_once_with_the_catalogs_treatment(shop: Shop) -> None:
    order_id = place_order(shop.dev)
    wait_until(lambda: shop.tasks(order_id)[CODE_KIND]["state"] == "done", timeout=60, what="loyalty points")
    [request] = shop.received(order_id, "/points")
    assert request["headers"]["Idempotency-Key"] == f"{order_id}:{CODE_KIND}"
    assert request["body"] == {"order_id": order_id, "email": "ada@example.com",
                               "points": int(float(shop.dev.order(order_id)["totals"]["total"]))}
    assert shop.tasks(order_id)[CODE_KIND]["task_name"].endswith(f"-{order_id}-{CODE_KIND}")


def test_the_webhook_kind_posts_the_order_with_its_key_and_token(shop: Shop) -> None:
    order_id = place_order(shop.dev)
    wait_until(lambda: shop.tasks(order_id)[WEBHOOK_KIND]["state"] == "done", timeout=60, what="CRM sync")
    [request] = shop.received(order_id, "/crm")
    assert request["headers"]["Idempotency-Key"] == f"{order_id}:{WEBHOOK_KIND}"
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert request["headers"]["Content-Type"] == "application/json"
    body = request["body"]
    assert body["order_id"] == order_id and body["customer"]["email"] == "ada@example.com"
    assert {"shipping_address", "items", "totals", "placed_at"} <= set(body)


def test_ten_concurrent_forced_runs_still_award_once(shop: Shop) -> None:
    emulator = f"http://127.0.0.1:{shop.dev.ports['emulator']}"
    catalog = load_catalog(shop.dev.config)
    queue = f"projects/{catalog.project}/locations/{catalog.region}/queues/{QUEUE}"
    requests.post(f"{emulator}/v2/{queue}:pause", timeout=10).raise_for_status()
    try:
        order_id = place_order(shop.dev)
        name = shop.tasks(order_id)[CODE_KIND]["task_name"]
        with ThreadPoolExecutor(max_workers=10) as pool:
            answers = list(pool.map(lambda _: requests.post(f"{emulator}/v2/{name}:run", timeout=30), range(10)))
        assert {a.status_code for a in answers} <= {200, 404}, [a.text for a in answers]
        wait_until(lambda: shop.tasks(order_id)[CODE_KIND]["state"] == "done", timeout=60, what="points")
    finally:
        requests.post(f"{emulator}/v2/{queue}:resume", timeout=10).raise_for_status()
    assert len(shop.received(order_id, "/points")) == 1


def test_a_permanent_error_is_a_failed_task_seen_by_the_cli_and_the_order_view(shop: Shop) -> None:
    requests.post(f"http://127.0.0.1:{shop.api.server.server_port}/mode", json={"mode": "reject"},
                  timeout=5).raise_for_status()
    try:
        order_id = place_order(shop.dev)
        wait_until(lambda: shop.tasks(order_id)[CODE_KIND]["state"] == "failed", timeout=60, what="failed")
    finally:
        requests.post(f"http://127.0.0.1:{shop.api.server.server_port}/mode", json={"mode": "ok"}, timeout=5)
    assert len(shop.received(order_id, "/points")) == 1, "a permanent error is not retried"
    listed = shop.dev.cli("failed", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"{order_id}:{CODE_KIND}" in listed.stdout and "PermanentError" in listed.stdout


def test_stats_and_the_deploy_plan_show_the_shops_queue(shop: Shop) -> None:
    stats = shop.dev.cli("stats")
    assert stats.returncode == 0, stats.stderr
    assert QUEUE in stats.stdout and CODE_KIND in stats.stdout and WEBHOOK_KIND in stats.stdout
    plan = shop.dev.cli("deploy", "plan", "--project", "shop-prod", "--region", "europe-west1",
                        "--config", str(shop.dev.config), "--only", "queues")
    assert plan.returncode == 0, plan.stderr
    assert f"gcloud tasks queues create {QUEUE}" in plan.stdout
