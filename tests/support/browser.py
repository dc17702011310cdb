"""Headless Chromium for tests that look at pages as a person does: Debian's ``chromium``
driven by Playwright for Python (``executable_path``; Playwright's own browser download is
not reachable here). Skips locally without it and fails in CI (``need_binary``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import need_binary

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@contextmanager
def headless_chromium(why: str) -> Iterator[Any]:
    """A launched Chromium browser (Playwright's ``Browser``), closed on exit; ``why`` is the skip reason."""
    chromium = need_binary("chromium", why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def screenshot_dir(tmp_path_factory: pytest.TempPathFactory, variable: str, name: str) -> Path:
    """Where a test writes its screenshots: the directory ``variable`` names (``docs/…`` to
    refresh the pictures in the docs), else a temporary one, so a normal run changes no file."""
    wanted = os.environ.get(variable)
    target = Path(wanted) if wanted else tmp_path_factory.mktemp(name)
    target.mkdir(parents=True, exist_ok=True)
    return target
