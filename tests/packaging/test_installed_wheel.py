"""ordertasks as a shop installs it: the wheel, in a fresh virtual environment outside the
repository, with nothing of the checkout on the path.

- the wheel holds one top-level import name (``ordertasks``) and every module and data file
  of the project's folders inside it;
- installing it resolves its runtime dependencies from the ranges in ``pyproject.toml``
  (``pip check`` agrees) and adds no ``handlers``, ``infra``, ``producer``, ``functions`` or
  ``cli`` module that would shadow a shop's own;
- ``docs/library.md``'s FastAPI example, copied to a directory of its own and served by
  uvicorn from that environment, schedules, inspects and cancels an order's side effects on
  the emulator the installed ``ordertasks emulator`` command runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ordertasks.infra.config import DEFAULT_CATALOG, REPO_ROOT, load_catalog
from tests.effects.orders import eur_order
from tests.packaging.conftest import outside_environment, run_in
from tests.support.servers import ServerProcess, free_port, http_ok, port_open

FOLDERS = ("handlers", "producer", "functions", "infra")
GENERIC = ("handlers", "producer", "functions", "infra", "cli")
# Building and installing into a fresh environment takes minutes on a busy 2-core machine.
pytestmark = pytest.mark.timeout(1200)


def test_the_wheel_holds_one_top_level_name_and_every_module(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"ordertasks", wheel.name.split("-py")[0] + ".dist-info"}
    wanted = {f"ordertasks/{p.relative_to(REPO_ROOT)}" for folder in FOLDERS
              for p in (REPO_ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert not wanted - set(names), sorted(wanted - set(names))
    assert "ordertasks/infra/tasks.toml" in names and "ordertasks/producer/data/tax_rates.toml" in names


def test_installing_adds_no_generic_import_names(venv: Path, tmp_path: Path) -> None:
    probe = ("import importlib.util, json, ordertasks.handlers; "
             f"print(json.dumps([[n for n in {GENERIC!r} if importlib.util.find_spec(n)], "
             "ordertasks.handlers.__file__]))")
    shadowing, core = json.loads(run_in(venv, "python", "-c", probe, cwd=tmp_path))
    assert shadowing == []
    assert Path(core).is_relative_to(venv) and not Path(core).is_relative_to(REPO_ROOT)
    assert "No broken requirements" in run_in(venv, "python", "-m", "pip", "check", cwd=tmp_path)
    assert "usage: ordertasks <command>" in run_in(venv, "ordertasks", "--help", cwd=tmp_path)


@pytest.fixture
def emulator(venv: Path, tmp_path: Path) -> Iterator[str]:
    """The installed ``ordertasks emulator`` with the built-in catalog's queues."""
    port = free_port()
    server = ServerProcess([str(venv / "bin" / "ordertasks"), "emulator", "--port", str(port),
                            "--db", str(tmp_path / "tasks.db"), "--queues", "--quiet"], port,
                           env=outside_environment(), log_path=tmp_path / "emulator.log",
                           ready=lambda: http_ok(port))
    server.start(timeout=60)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def shop(venv: Path, emulator: str, tmp_path: Path) -> Iterator[str]:
    """The FastAPI example in a directory of its own, served by uvicorn from the fresh environment."""
    app_dir = tmp_path / "checkout"
    app_dir.mkdir()
    shutil.copy(REPO_ROOT / "examples" / "fastapi_checkout" / "app.py", app_dir / "app.py")
    port = free_port()
    env = outside_environment() | {"CLOUD_TASKS_EMULATOR_HOST": emulator, "ORDERTASKS_DATA_DIR": str(tmp_path / "data"),
                                   "ORDERTASKS_HANDLER_URL": "http://127.0.0.1:9/", "ORDERTASKS_OIDC_VERIFY": "false"}
    server = ServerProcess([str(venv / "bin" / "uvicorn"), "app:app", "--port", str(port), "--app-dir", str(app_dir)],
                           port, env=env, log_path=tmp_path / "uvicorn.log", ready=lambda: port_open(port))
    server.start(timeout=60)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def call(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_fastapi_example_runs_from_the_installed_wheel(shop: str, tmp_path: Path) -> None:
    kinds = len(load_catalog(DEFAULT_CATALOG).kinds)
    order = eur_order().model_dump(mode="json")
    status, paid = call("POST", f"{shop}/orders/ord_wheel_1/paid", order)
    assert status == 200, paid
    assert [t["state"] for t in paid["tasks"]] == ["created"] * kinds
    status, again = call("POST", f"{shop}/orders/ord_wheel_1/paid", order)
    assert [t["state"] for t in again["tasks"]] == ["exists"] * kinds
    status, view = call("GET", f"{shop}/orders/ord_wheel_1/tasks")
    assert status == 200 and view["status"] == "paid"
    assert {t["state"] for t in view["tasks"]} == {"scheduled"} and len(view["tasks"]) == kinds
    status, refunded = call("POST", f"{shop}/orders/ord_wheel_1/refunded")
    assert [t["state"] for t in refunded["tasks"]] == ["cancelled"] * kinds
    assert call("GET", f"{shop}/orders/ord_never/tasks")[0] == 404
    assert (tmp_path / "data" / "ordertasks.db").is_file()   # the shop's data directory, not site-packages


def test_a_local_command_without_the_local_extra_says_what_to_install() -> None:
    """Without aiohttp (``pip install ordertasks`` without ``[local]``) the emulator explains itself."""
    code = ("import sys; sys.modules['aiohttp'] = None; from ordertasks.cli import main; "
            "sys.exit(main(['emulator', '--help']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "ordertasks emulator: needs aiohttp" in done.stderr and "pip install 'ordertasks[local]'" in done.stderr


DEV_PARTS = ("emulator", "handler", "checkout", "smtp", "warehouse", "console")
DELAY_SCALE = 0.001


@pytest.fixture
def dev_stack(venv: Path, tmp_path: Path) -> Iterator[dict[str, int]]:
    """The installed ``ordertasks dev`` in a directory of its own, on free ports."""
    ports = {name: free_port() for name in DEV_PARTS}
    argv = [str(venv / "bin" / "ordertasks"), "dev", "--delay-scale", str(DELAY_SCALE), "--data-dir", str(tmp_path / "var"),
            *(arg for name, port in ports.items() for arg in (f"--{name}-port", str(port)))]
    server = ServerProcess(argv, ports["checkout"], env=outside_environment(), log_path=tmp_path / "dev.log",
                           ready=lambda: http_ok(ports["checkout"]))
    server.start(timeout=120)
    try:
        yield ports
    finally:
        server.stop()


def test_the_example_runs_its_side_effects_on_the_installed_dev_stack(venv: Path, dev_stack: dict[str, int],
                                                                      tmp_path: Path) -> None:
    """The whole local stack from the wheel: its handler (OIDC verified) performs the tasks
    the shop's own FastAPI app scheduled, reading the order that app stored in ``./var``."""
    from tests.support.servers import wait_until

    app_dir = tmp_path / "checkout"
    app_dir.mkdir()
    shutil.copy(REPO_ROOT / "examples" / "fastapi_checkout" / "app.py", app_dir / "app.py")
    port = free_port()
    env = outside_environment() | {"CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{dev_stack['emulator']}",
                                   "ORDERTASKS_HANDLER_URL": f"http://127.0.0.1:{dev_stack['handler']}/",
                                   "ORDERTASKS_DATA_DIR": str(tmp_path / "var")}
    shop = ServerProcess([str(venv / "bin" / "uvicorn"), "app:app", "--port", str(port), "--app-dir", str(app_dir)],
                         port, env=env, log_path=tmp_path / "uvicorn.log", ready=lambda: port_open(port))
    shop.start(timeout=60)
    try:
        status, paid = call("POST", f"http://127.0.0.1:{port}/orders/ord_wheel_dev/paid", eur_order().model_dump(mode="json"))
        assert status == 200, paid
        catalog = load_catalog(DEFAULT_CATALOG)
        soon = {name for name, k in catalog.kinds.items() if k.delay_seconds * DELAY_SCALE < 5}
        assert soon, "the catalog has no kind due within seconds"

        def done() -> dict[str, str] | None:
            view = call("GET", f"http://127.0.0.1:{port}/orders/ord_wheel_dev/tasks")[1]
            states = {t["kind"]: t["state"] for t in view["tasks"]}
            return states if all(states[name] == "done" for name in soon) else None
        states = wait_until(done, timeout=90, interval=0.5, what=f"{sorted(soon)} done")
        assert set(states) == set(catalog.kinds)
    finally:
        shop.stop()
    mails = [p.read_bytes() for p in (tmp_path / "var" / "mail").glob("*.eml")]
    assert any(b"X-Ordertasks-Order: ord_wheel_dev" in mail for mail in mails)
    assert list((tmp_path / "var" / "blobs").rglob("ord_wheel_dev*.pdf"))
