"""The built wheel and a fresh virtual environment outside the repository that holds it,
shared by every test of ``tests/packaging`` (building and installing take minutes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ordertasks.infra.config import REPO_ROOT

INSTALL_TIMEOUT = 900


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel .`` of the checkout."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO_ROOT)],
                   check=True, timeout=INSTALL_TIMEOUT)
    [built] = out.glob("ordertasks-*.whl")
    return built


def outside_environment() -> dict[str, str]:
    """The environment of a process that knows nothing of the checkout."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ORDERTASKS_", "PYTHON", "VIRTUAL_ENV", "CLOUD_TASKS")) and str(REPO_ROOT) not in v}
    return env | {"PATH": os.defpath, "PYTHONNOUSERSITE": "1"}


@pytest.fixture(scope="session")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment (outside the repository) with the wheel and what the example serves with."""
    home = tmp_path_factory.mktemp("shop")
    assert REPO_ROOT not in home.parents
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(home / "venv")], check=True, timeout=120)
    pip = [str(home / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # The pins of requirements-dev.txt as constraints: the versions CI already tested, from pip's cache.
    subprocess.run([*pip, f"ordertasks[all] @ {wheel.as_uri()}", "fastapi", "uvicorn", "-c", str(pinned_constraints(home))],
                   check=True, timeout=INSTALL_TIMEOUT, cwd=home, env=outside_environment())
    return home / "venv"


def pinned_lines(requirements: Path) -> list[str]:
    """The ``name==version`` lines of a requirements file and of those it includes (``-r``)."""
    lines = []
    for line in requirements.read_text(encoding="utf-8").splitlines():
        if line.startswith("-r "):
            lines += pinned_lines(requirements.parent / line.removeprefix("-r ").strip())
        elif line.strip() and not line.startswith(("#", "-")):
            lines.append(line.strip())
    return lines


def pinned_constraints(directory: Path) -> Path:
    """requirements-dev.txt's pins as one constraints file in ``directory``: pip reads a ``-r``
    inside a constraints file as requirements, which would install every pin."""
    path = directory / "tested-pins.txt"
    path.write_text("\n".join(pinned_lines(REPO_ROOT / "requirements-dev.txt")) + "\n", encoding="utf-8")
    return path


def run_in(venv: Path, *argv: str, cwd: Path) -> str:
    """Run a command of the fresh environment outside the repository; its stdout."""
    done = subprocess.run([str(venv / "bin" / argv[0]), *argv[1:]], cwd=cwd, env=outside_environment(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout
