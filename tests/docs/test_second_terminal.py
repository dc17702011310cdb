"""The terminal the docs' blocks run in is set up only by what the dev banner prints."""

from __future__ import annotations

import shutil
from pathlib import Path

from ordertasks.handlers.config import Settings
from tests.docs.conftest import ACTIVATE
from tests.docs.terminal import Terminal


def test_the_banner_points_a_second_terminal_at_this_stack(terminal: Terminal) -> None:
    settings = Settings.from_env(terminal.env)
    assert settings.tasks.emulator_host == f"127.0.0.1:{terminal.ports['emulator']}"
    assert settings.tasks.handler_url == f"http://127.0.0.1:{terminal.ports['handler']}/"
    assert settings.tasks.checkout_url == f"http://127.0.0.1:{terminal.ports['checkout']}/"
    assert settings.store.data_dir == terminal.data_dir


def test_the_banner_puts_ordertasks_on_the_path(dev_banner_terminal: tuple[str, Terminal]) -> None:
    banner, terminal = dev_banner_terminal
    activate = ACTIVATE.search(banner)
    assert activate, banner
    assert shutil.which("ordertasks", path=str(Path(activate["path"]).parent))
