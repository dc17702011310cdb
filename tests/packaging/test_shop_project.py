"""A shop's own project outside the repository, as a shop adopting ordertasks has it.

ordertasks is installed from the wheel into a fresh environment (``tests/packaging/conftest.py``);
the shop's directory holds its catalog, which extends the shipped one (a code kind and a
webhook kind of its own, no warehouse, no checkout of ours), and its kind module beside it;
``ORDERTASKS_CONFIG`` names the catalog by a relative path. Nothing of the repository is on
any path of those processes.

- ``ordertasks dev`` started in that directory runs only the parts the catalog uses and runs
  the shop's kinds end to end: its code kind, its webhook kind's POST at a CRM stand-in (a real
  HTTP server on loopback) and the confirmation email it inherits;
- ``ordertasks deploy plan`` succeeds with no Stripe and no warehouse setting; its staging
  directory holds ``main.py``, ``requirements.txt``, the shop's module and its catalog, and
  nothing in the plan points into the repository;
- the staged ``main.py``, imported in another fresh environment made from its
  ``requirements.txt`` alone, exposes ``handle_task`` and ``run_maintenance``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from datetime import datetime, timezone
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ordertasks.infra.config import REPO_ROOT, load_catalog
from tests.deploy.conftest import PROJECT, REGION
from tests.deploy.shop import write_shop
from tests.deploy.test_shop_project import env_of, flags, planned
from tests.packaging.conftest import INSTALL_TIMEOUT, outside_environment, pinned_constraints
from tests.support.samples import library_order
from tests.support.servers import ServerProcess, free_port, port_open, wait_until

pytestmark = pytest.mark.timeout(1500)
DELAY_SCALE = 0.001
RUNNING_PARTS = ("emulator", "handler", "smtp", "console")
EXPORT = re.compile(r"^\s*export (?P<name>[A-Z_][A-Z0-9_]*)=(?P<value>\S+)\s*$", re.M)
BANNER_END = "Ctrl-C stops everything."


class CrmStandIn(BaseHTTPRequestHandler):
    """The shop's CRM: records each POST the webhook kind sends and answers 200."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        """Quiet: the test reads ``received``."""


@pytest.fixture
def crm() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A CRM stand-in on a free loopback port: its URL and what it received."""
    received: list[dict[str, Any]] = []
    handler = type("Crm", (CrmStandIn,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/orders", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def shop_dir(tmp_path: Path) -> Path:
    """The shop's project: ``tasks.toml`` (extends the shipped catalog) and ``shop_kinds.py``."""
    return write_shop(tmp_path / "shop")


def shop_environment(**extra: str) -> dict[str, str]:
    """A shell in the shop's project: the catalog named relative to it."""
    return outside_environment() | {"ORDERTASKS_CONFIG": "tasks.toml", **extra}


def banner_of(log: Path, server: ServerProcess) -> str:
    """``ordertasks dev``'s output up to the end of its banner."""
    def printed() -> str | None:
        text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        if server.proc is not None and server.proc.poll() is not None:
            raise AssertionError(f"ordertasks dev exited ({server.proc.returncode}):\n{text}")
        return text if BANNER_END in text else None
    return wait_until(printed, timeout=120, interval=0.2, what="the dev stack's banner")


SCHEDULE_AND_WAIT = """
import json, sys, time
from ordertasks import OrderTasks

order, soon = json.loads(sys.argv[1]), set(json.loads(sys.argv[2]))
with OrderTasks.from_env() as tasks:
    tasks.schedule(order)
    deadline = time.monotonic() + 90
    while True:
        states = {t["kind"]: t["state"] for t in tasks.status(order["order_id"])["tasks"]}
        if all(states.get(kind) == "done" for kind in soon) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
print(json.dumps(states))
"""


def test_dev_runs_the_shops_own_kinds_from_its_directory(venv: Path, shop_dir: Path, tmp_path: Path,
                                                         crm: tuple[str, list[dict[str, Any]]]) -> None:
    crm_url, received = crm
    catalog = load_catalog(shop_dir / "tasks.toml")
    soon = sorted(name for name, k in catalog.kinds.items() if k.delay_seconds * DELAY_SCALE < 5)
    assert "award_points" in soon and "sync_crm" in soon
    ports = {name: free_port() for name in RUNNING_PARTS}
    log = tmp_path / "dev.log"
    argv = [str(venv / "bin" / "ordertasks"), "dev", "--delay-scale", str(DELAY_SCALE), "--data-dir", "var",
            *(arg for name, port in ports.items() for arg in (f"--{name}-port", str(port)))]
    env = shop_environment(SHOP_CRM_URL=crm_url)
    server = ServerProcess(argv, ports["console"], env=env, log_path=log, cwd=shop_dir)
    server.start(timeout=120)
    try:
        banner = banner_of(log, server)
        assert "checkout" not in re.findall(r"^\s+(\w+)\s+ready on", banner, re.M)
        assert "warehouse" not in re.findall(r"^\s+(\w+)\s+ready on", banner, re.M)
        second_terminal = env | {m["name"]: m["value"] for m in EXPORT.finditer(banner)}
        order = library_order("ord_shop_dev", placed_at=datetime.now(timezone.utc).isoformat())
        done = subprocess.run([str(venv / "bin" / "python"), "-c", SCHEDULE_AND_WAIT, json.dumps(order),
                               json.dumps(soon)], cwd=shop_dir, env=second_terminal, capture_output=True,
                              text=True, timeout=150)
        assert done.returncode == 0, done.stderr
        states = json.loads(done.stdout)
    finally:
        server.stop()
    assert set(states) == set(catalog.kinds)
    assert {kind: states[kind] for kind in soon} == {kind: "done" for kind in soon}, states
    [posted] = [r for r in received if r["body"].get("order_id") == "ord_shop_dev"]
    assert posted["headers"].get("Idempotency-Key")
    mails = [p.read_bytes() for p in (shop_dir / "var" / "mail").glob("*.eml")]
    assert any(b"X-Ordertasks-Order: ord_shop_dev" in mail for mail in mails)
    assert not port_open(ports["handler"])


def test_deploy_plan_from_the_installed_package_stages_a_source_that_installs_alone(
        venv: Path, shop_dir: Path, tmp_path: Path) -> None:
    done = subprocess.run([str(venv / "bin" / "ordertasks"), "deploy", "plan", "--project", PROJECT, "--region", REGION],
                          cwd=shop_dir, env=shop_environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    plan = done.stdout
    assert "STRIPE" not in plan and "WAREHOUSE" not in plan and not planned(plan, "run", "deploy")
    assert str(REPO_ROOT) not in plan and "--source=.ordertasks/deploy/source" in plan
    staged = shop_dir / ".ordertasks" / "deploy" / "source"
    assert {"main.py", "requirements.txt", "tasks.toml", "shop_kinds.py"} <= {p.name for p in staged.iterdir()}

    # The function's environment: made from the staged requirements.txt alone, as Cloud Build does.
    function_venv = tmp_path / "function-venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(function_venv)],
                   check=True, timeout=120)
    subprocess.run([str(function_venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "-r", "requirements.txt", "-c", str(pinned_constraints(tmp_path))],
                   cwd=staged, env=outside_environment(), check=True, timeout=INSTALL_TIMEOUT)
    handler = flags(planned(plan, "functions", "deploy", "ordertasks-handler")[0])
    mounted = {item.split("=", 1)[0]: "from-secret-manager" for item in handler["set-secrets"].split(",")}
    cloud = outside_environment() | env_of(handler["update-env-vars"]) | mounted | {"FUNCTION_TARGET": "handle_task"}
    probe = ("import main, ordertasks, shop_kinds\n"
             "print(main.handle_task.__name__, main.run_maintenance.__name__, ordertasks.__file__, shop_kinds.__file__)")
    imported = subprocess.run([str(function_venv / "bin" / "python"), "-c", probe], cwd=staged, env=cloud,
                              capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    entry, maintenance, package, shop_module = imported.stdout.split()
    assert (entry, maintenance) == ("handle_task", "run_maintenance")
    assert Path(package).is_relative_to(function_venv) and Path(shop_module) == staged / "shop_kinds.py"
