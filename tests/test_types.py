"""``mypy --strict`` over the core (``handlers/``) and the handler entry point (``functions/``).

The folders import as ``ordertasks.handlers`` and ``ordertasks.functions`` (the wheel maps them
inside ``ordertasks``; a checkout extends the package's ``__path__``, which mypy cannot follow),
so the check runs on the wheel's layout: a directory whose ``ordertasks/`` links to the folders.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
CHECKED = ("handlers", "functions")


def wheel_layout(root: Path) -> Path:
    """``root/ordertasks/{__init__.py, handlers -> REPO/handlers, ...}``."""
    package = root / "ordertasks"
    package.mkdir()
    for path in (REPO / "ordertasks").glob("*.py"):
        shutil.copy(path, package / path.name)
    for folder in ("handlers", "functions", "producer", "infra"):
        (package / folder).symlink_to(REPO / folder, target_is_directory=True)
    return root


def test_the_core_and_the_handler_are_strictly_typed(tmp_path: Path) -> None:
    root = wheel_layout(tmp_path)
    packages = [arg for folder in CHECKED for arg in ("-p", f"ordertasks.{folder}")]
    done = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"), "--strict",
                           "--cache-dir", str(REPO / ".mypy_cache"), *packages],
                          cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found" in done.stdout
