"""The pytest plugin as a shop meets it: docs/testing.md's files, copied into a directory outside
the repository, run by ``pytest`` there (the fixture found through the installed ``pytest11``
entry point, not a conftest of ours), each test in well under a second.

The repository is installed editable (``make`` runs ``pip install --no-deps -e .``), which is
what registers the entry point; a checkout without that install fails here with the command.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from ordertasks.infra.config import REPO_ROOT
from tests.docs.blocks import blocks_of

DOC = REPO_ROOT / "docs" / "testing.md"
FILE_LINE = re.compile(r"^# (?P<name>[\w.]+\.(py|toml))\n")
SHOP_FILES = {"loyalty.py", "checkout.py", "tasks.toml", "conftest.py", "test_loyalty.py"}
PER_TEST_LIMIT = 0.25      # seconds of test time each: "milliseconds", with room for a busy machine


def doc_files() -> dict[str, str]:
    """File name → text of every block of docs/testing.md whose first line is ``# <file name>``."""
    found = {}
    for block in blocks_of(DOC):
        match = FILE_LINE.match(block.text)
        if match:
            found[match["name"]] = block.text
    return found


def shop_environment() -> dict[str, str]:
    """This environment without anything that points at the checkout or turns plugins off."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("ORDERTASKS_", "PYTHONPATH", "PYTEST_", "CLOUD_TASKS")) and str(REPO_ROOT) not in v}


def run_pytest(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pytest ARGS`` of this environment, in ``where``."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=where,
                          env=shop_environment(), capture_output=True, text=True, timeout=240)


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """The shop's directory, outside the repository, holding the doc's files."""
    assert REPO_ROOT not in tmp_path.parents
    if not any(ep.value == "ordertasks.testing.pytest_plugin" for ep in entry_points(group="pytest11")):
        pytest.fail("the pytest11 entry point is not installed: run .venv/bin/python -m pip install --no-deps -e .")
    for name, text in doc_files().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_the_doc_holds_every_file_of_the_shop() -> None:
    assert set(doc_files()) == SHOP_FILES


def test_the_shops_tests_pass_outside_the_repository_in_milliseconds(shop: Path) -> None:
    done = run_pytest(shop, "--junitxml", str(shop / "report.xml"))
    assert done.returncode == 0, done.stdout + done.stderr
    cases = ET.parse(shop / "report.xml").getroot().iter("testcase")
    times = {case.get("name"): float(case.get("time", "nan")) for case in cases}
    assert len(times) == 3, times
    assert all(seconds < PER_TEST_LIMIT for seconds in times.values()), times


def test_a_run_that_uses_no_fixture_of_ours_loads_nothing_of_ordertasks(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text(
        "import sys\n\n\ndef test_plain():\n"
        "    assert 'ordertasks.testing.pytest_plugin' in sys.modules\n"
        "    assert not [m for m in sys.modules if m.startswith(('ordertasks.producer', 'ordertasks.handlers'))]\n",
        encoding="utf-8")
    done = run_pytest(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_plugin_ships_in_the_wheel() -> None:
    """``ordertasks.testing`` is a package of the wheel and the entry point names its plugin."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "ordertasks.testing" in project["tool"]["setuptools"]["packages"]
    assert project["project"]["entry-points"]["pytest11"] == {"ordertasks": "ordertasks.testing.pytest_plugin"}
    assert (REPO_ROOT / "ordertasks" / "testing" / "pytest_plugin.py").is_file()
