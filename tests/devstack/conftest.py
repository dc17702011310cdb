"""``ordertasks dev`` as a subprocess on free ports, with short delays and backoffs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from ordertasks.infra.config import REPO_ROOT
from tests.support.samples import CHECKOUT_BODY, fast_catalog
from tests.support.servers import ServerProcess, free_port

DELAY_SCALE = "0.001"   # 0 s / 5 ms / 30 ms / 60 ms; the follow-up waits 86 s, the review 10 min


@dataclass
class DevStack:
    """A running ``ordertasks dev`` and how to talk to each part."""

    data_dir: Path
    config: Path
    ports: dict[str, int]
    server: ServerProcess
    extra_env: dict[str, str] = field(default_factory=dict)   # e.g. PYTHONPATH of a shop's own kinds

    @property
    def checkout(self) -> str:
        return f"http://127.0.0.1:{self.ports['checkout']}"

    @property
    def warehouse(self) -> str:
        return f"http://127.0.0.1:{self.ports['warehouse']}"

    def env(self) -> dict[str, str]:
        """What an operator exports to point the CLI at this stack."""
        return {**os.environ, **self.extra_env, "ORDERTASKS_DATA_DIR": str(self.data_dir), "ORDERTASKS_CONFIG": str(self.config),
                "CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{self.ports['emulator']}",
                "ORDERTASKS_HANDLER_URL": f"http://127.0.0.1:{self.ports['handler']}/"}

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``ordertasks ARGS`` as a person would, capturing what they would see."""
        return subprocess.run([sys.executable, "-m", "cli", *args], env=self.env(), cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=120)

    def warehouse_mode(self, mode: str) -> None:
        """Switch the warehouse stand-in's behaviour."""
        requests.post(f"{self.warehouse}/mode", json={"mode": mode}, timeout=5).raise_for_status()

    def notifications(self, order_id: str) -> list[dict[str, Any]]:
        """Warehouse notifications recorded for an order."""
        items = requests.get(f"{self.warehouse}/notifications", timeout=5).json()["notifications"]
        return [n for n in items if n["key"].startswith(order_id + ":")]

    def emails(self, order_id: str) -> list[Path]:
        """``.eml`` files that mention the order in their headers."""
        header = f"X-Ordertasks-Order: {order_id}".encode()
        return [p for p in (self.data_dir / "mail").glob("*.eml") if header in p.read_bytes()]

    def order(self, order_id: str) -> dict[str, Any]:
        """``GET /api/orders/<id>``."""
        return requests.get(f"{self.checkout}/api/orders/{order_id}", timeout=10).json()

    def task_states(self, order_id: str) -> dict[str, str]:
        """kind → state, from the order view."""
        return {t["kind"]: t["state"] for t in self.order(order_id)["tasks"]}


def dev_argv(data_dir: Path, config: Path, ports: dict[str, int], mode: str = "ok",
             checkout: bool | None = True) -> list[str]:
    """The ``ordertasks dev`` command line for these ports. ``checkout``: ``--checkout`` (the
    default: these tests order through our checkout, whatever the catalog, e.g. a shop's catalog
    without ``[checkout]``), ``--no-checkout``, or None for what the catalog says."""
    argv = [sys.executable, "-m", "cli", "dev", "--data-dir", str(data_dir), "--config", str(config),
            "--delay-scale", DELAY_SCALE, "--warehouse-mode", mode]
    if checkout is not None:
        argv.append("--checkout" if checkout else "--no-checkout")
    for name, port in ports.items():
        argv += [f"--{name}-port", str(port)]
    return argv


def start_dev(data_dir: Path, config: Path, ports: dict[str, int]) -> ServerProcess:
    """Start the stack and wait for its banner's last part (the checkout API) to answer."""
    def ready() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{ports['checkout']}/healthz", timeout=0.5).ok
        except requests.RequestException:
            return False
    server = ServerProcess(dev_argv(data_dir, config, ports), ports["checkout"], env=dict(os.environ),
                           log_path=data_dir.parent / "dev.log", ready=ready)
    return server.start(timeout=90)


BANNER_END = "Ctrl-C stops everything."


def start_dev_banner(data_dir: Path, config: Path, ports: dict[str, int], *flags: str) -> ServerProcess:
    """Start the stack with ``flags`` and wait for its banner (printed once every part it runs is up)."""
    log = data_dir.parent / "dev.log"

    def ready() -> bool:
        return log.exists() and BANNER_END in log.read_text(encoding="utf-8", errors="replace")
    server = ServerProcess(dev_argv(data_dir, config, ports, checkout=None) + list(flags), ports["console"],
                           env=dict(os.environ), log_path=log, ready=ready)
    return server.start(timeout=90)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """One stack for the module (the scenarios use different orders)."""
    root = tmp_path_factory.mktemp("dev")
    data_dir, config = root / "var", fast_catalog(root)
    data_dir.mkdir()
    ports = {name: free_port() for name in ("emulator", "handler", "checkout", "smtp", "warehouse", "console")}
    server = start_dev(data_dir, config, ports)
    try:
        yield DevStack(data_dir, config, ports, server)
    finally:
        server.stop()


def place_order(stack: DevStack, **changes: Any) -> str:
    """POST a checkout; return the order id (asserting 201)."""
    resp = requests.post(f"{stack.checkout}/api/checkout", json={**CHECKOUT_BODY, **changes}, timeout=30)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["order_id"])
