"""``pip install ordertasks`` alone, and ``make dev`` without the test toolchain.

- The bare wheel, in a fresh virtual environment outside the repository, installs none of the
  extras' packages (no stripe, reportlab, flask or functions-framework) and ``pip check`` agrees.
- From it a shop's script schedules an order, reads its status and cancels it; writes another
  through its own SQLite transaction, which ``relay()`` moves to Cloud Tasks; and runs an
  order's effects with ``ordertasks.testing``, where the invoice's says to install the
  ``handler`` extra. The emulator runs from the checkout's environment: the bare one has no
  ``local`` extra.
- There, every command whose extra is missing names the extra to install (exit 2, no traceback).
- The install ``make dev`` runs, in a fresh environment, installs exactly what ``ordertasks[all]``
  needs, and nothing pinned only for the tests (``requirements-dev.txt``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator
from importlib.metadata import Distribution, distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ordertasks.infra.config import DEFAULT_CATALOG, REPO_ROOT, load_catalog
from tests.effects.orders import eur_order
from tests.packaging.conftest import INSTALL_TIMEOUT, outside_environment, pinned_lines, run_in, pinned_constraints
from tests.support.servers import ServerProcess, free_port, http_ok

pytestmark = pytest.mark.timeout(1200)
PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
SEEDED = {"pip", "setuptools"}                                 # what `python -m venv` puts in


def names(requirements: Iterable[str]) -> set[str]:
    """The distribution names of ``requirements`` (PEP 508 lines)."""
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def installed(venv: Path) -> set[str]:
    """Every distribution installed in ``venv``, as the environment itself lists them."""
    probe = "import importlib.metadata as m, json; print(json.dumps([d.metadata['Name'] for d in m.distributions()]))"
    return {canonicalize_name(n) for n in json.loads(run_in(venv, "python", "-c", probe, cwd=venv))}


@pytest.fixture(scope="module")
def bare(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment outside the repository with the wheel and no extra."""
    home = tmp_path_factory.mktemp("bare")
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(home / "venv")], check=True, timeout=120)
    subprocess.run([str(home / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    wheel.as_uri(), "-c", str(pinned_constraints(home))],
                   check=True, timeout=INSTALL_TIMEOUT, cwd=home, env=outside_environment())
    return home / "venv"


def test_the_bare_wheel_installs_none_of_the_extras(bare: Path) -> None:
    present = installed(bare)
    extras_only = set().union(*(names(deps) for deps in PROJECT["optional-dependencies"].values())) - {"ordertasks"}
    assert {"stripe", "reportlab", "flask", "functions-framework"} <= extras_only
    assert not present & {"stripe", "reportlab", "flask", "functions-framework"}
    # A package an extra names may still come with a base dependency's own requirements
    # (google-api-core requires opentelemetry-api): present only when one of those needs it.
    [site] = bare.glob("lib/python*/site-packages")
    base = [Requirement(r) for r in PROJECT["dependencies"]]
    needed_by_base = set().union(*(closure(site, (canonicalize_name(r.name), frozenset(r.extras))) for r in base))
    assert not (present & extras_only) - needed_by_base, sorted((present & extras_only) - needed_by_base)
    assert names(PROJECT["dependencies"]) <= present
    assert "No broken requirements" in run_in(bare, "python", "-m", "pip", "check", cwd=bare)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[str]:
    """The checkout's own ``ordertasks emulator`` with the built-in catalog's queues."""
    port = free_port()
    server = ServerProcess([sys.executable, "-m", "ordertasks.cli", "emulator", "--port", str(port),
                            "--db", str(tmp_path / "tasks.db"), "--queues", "--quiet"], port,
                           log_path=tmp_path / "emulator.log", ready=lambda: http_ok(port))
    server.start(timeout=60)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


SHOP = '''
import json, sqlite3, sys
from ordertasks import OrderTasks
from ordertasks.testing import local_order_tasks

order = json.load(open("order.json"))
states = lambda results: sorted({r.state for r in results})
out = {}
with OrderTasks.from_env() as tasks:
    out["schedule"] = states(tasks.schedule(order))
    out["status"] = sorted({t["state"] for t in tasks.status(order["order_id"])["tasks"]})
    out["cancel"] = states(tasks.cancel(order["order_id"]))
    shop = sqlite3.connect("shop.db")
    shop.execute("CREATE TABLE IF NOT EXISTS shop_orders (id TEXT PRIMARY KEY)")
    shop.execute("INSERT INTO shop_orders VALUES ('ord_bare_outbox')")
    out["in_transaction"] = states(tasks.schedule(order | {"order_id": "ord_bare_outbox"}, transaction=shop))
    shop.commit()
    relayed = tasks.relay()
    out["relay"] = [relayed.relayed, relayed.created]
    out["kinds"] = len(tasks.kinds)
with local_order_tasks() as local:
    local.schedule(order | {"order_id": "ord_bare_test"})
    out["testing"] = {d.kind: [d.outcome, d.error] for d in local.run_due()}
out["loaded"] = sorted(m for m in ("flask", "stripe", "reportlab", "functions_framework") if m in sys.modules)
print(json.dumps(out))
'''


def test_the_library_works_from_the_bare_wheel(bare: Path, emulator: str, tmp_path: Path) -> None:
    order = eur_order().model_dump(mode="json") | {"order_id": "ord_bare_1"}
    (tmp_path / "order.json").write_text(json.dumps(order), encoding="utf-8")
    (tmp_path / "shop.py").write_text(SHOP, encoding="utf-8")
    env = outside_environment() | {"CLOUD_TASKS_EMULATOR_HOST": emulator, "ORDERTASKS_DATA_DIR": str(tmp_path / "data"),
                                   "ORDERTASKS_HANDLER_URL": "http://127.0.0.1:9/", "ORDERTASKS_OIDC_VERIFY": "false",
                                   "ORDERTASKS_OUTBOX_URL": f"sqlite:///{tmp_path / 'shop.db'}"}
    init = subprocess.run([str(bare / "bin" / "ordertasks"), "outbox", "init"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    done = subprocess.run([str(bare / "bin" / "python"), "shop.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])

    kinds = len(load_catalog(DEFAULT_CATALOG).kinds)
    assert (out["schedule"], out["status"], out["cancel"]) == (["created"], ["scheduled"], ["cancelled"])
    assert out["in_transaction"] == ["pending"] and out["relay"] == [1, kinds] and out["kinds"] == kinds
    # Every effect of the shipped catalog runs but the invoice, which says what to install.
    invoice = out["testing"].pop("generate_invoice")
    assert invoice[0] == "retry" and "pip install 'ordertasks[handler]'" in invoice[1]
    assert all(v == ["done", None] for v in out["testing"].values()) and len(out["testing"]) == kinds - 1
    assert out["loaded"] == []


@pytest.mark.parametrize(("command", "extra"), [("emulator", "local"), ("handler", "handler"), ("checkout", "checkout"),
                                                ("console", "console"), ("dev", "all")])
def test_a_command_without_its_extra_says_which_to_install(bare: Path, command: str, extra: str) -> None:
    done = subprocess.run([str(bare / "bin" / "ordertasks"), command, "--help"], cwd=bare, env=outside_environment(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"pip install 'ordertasks[{extra}]'" in done.stderr and f"ordertasks {command}: needs " in done.stderr


def closure(site: Path, root: tuple[str, frozenset[str]]) -> set[str]:
    """The distributions ``root`` (a name and its extras) needs in ``site``, transitively, with
    every marker evaluated as pip does."""
    found: dict[str, Distribution] = {canonicalize_name(d.metadata["Name"]): d for d in distributions(path=[str(site)])}
    walked: set[tuple[str, frozenset[str]]] = set()
    todo = [root]
    while todo:
        name, extras = item = todo.pop()
        if item in walked:
            continue
        walked.add(item)
        for requirement in map(Requirement, found[name].requires or []):
            if requirement.marker is None or any(requirement.marker.evaluate({"extra": e}) for e in extras | {""}):
                todo.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return {name for name, _ in walked}


def test_make_dev_installs_the_running_system_and_no_test_tool(tmp_path: Path) -> None:
    """``make dev`` itself into a fresh environment; ``ARGS=--help`` so the stack it starts only
    prints its usage."""
    venv = tmp_path / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    done = subprocess.run(["make", "-s", "-C", str(REPO_ROOT), f"VENV={venv}", f"PYTHON={base_python}", "dev",
                           "ARGS=--help"], capture_output=True, text=True, timeout=INSTALL_TIMEOUT, env=outside_environment())
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr

    [site] = venv.glob("lib/python*/site-packages")
    present = installed(venv)
    wanted = closure(site, ("ordertasks", frozenset({"all"})))
    assert {"stripe", "reportlab", "functions-framework", "aiohttp", "aiosmtpd"} <= wanted
    assert present - SEEDED == wanted, (sorted(present - SEEDED - wanted), sorted(wanted - present))
    # Pinned for the tests and not needed by the running system (google-api-core needs the
    # opentelemetry-api the tracing tests pin, so it is not test-only).
    test_only = (names(pinned_lines(REPO_ROOT / "requirements-dev.txt"))
                 - names(pinned_lines(REPO_ROOT / "requirements-run.txt")) - wanted)
    assert {"pytest", "mypy", "hypothesis", "playwright", "schemathesis", "localstripe", "py-spy"} <= test_only
    assert not present & test_only, sorted(present & test_only)
