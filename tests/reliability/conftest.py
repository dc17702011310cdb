"""Reliability suite fixtures; soak-only tests (``@pytest.mark.slow``) run only under ``SOAK=1``.

``make soak`` sets ``SOAK=1`` and selects ``-m slow``; plain ``make test`` collects the slow
tests and skips them with the reason, so CI never pays for the soak.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.handler_rig import rig_for  # noqa: F401 - a fixture shared by the modules here
from tests.reliability.stack import LocalStack
from tests.support.samples import fast_catalog

SOAK = os.environ.get("SOAK", "") not in ("", "0", "false")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``slow`` reliability tests unless ``SOAK=1``."""
    if SOAK:
        return
    skip = pytest.mark.skip(reason="soak test: run with `make soak` (SOAK=1)")
    here = Path(__file__).parent
    for item in items:
        if "slow" in item.keywords and here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


@pytest.fixture
def local_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """The whole local stack, warehouse ok, fast retries; stopped after the test."""
    stack = LocalStack(tmp_path, fast_catalog(tmp_path)).start()
    try:
        yield stack
    finally:
        stack.stop()
