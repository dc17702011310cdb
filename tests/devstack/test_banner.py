"""The ``ordertasks dev`` banner tells a second terminal exactly what it needs, and nothing more."""

from __future__ import annotations

import shlex
from pathlib import Path

from ordertasks.handlers.config import Settings
from ordertasks.infra.devstack import banner, parse, second_terminal_exports


def exported(lines: list[str]) -> dict[str, str]:
    """What a shell has after running ``export`` lines."""
    pairs = (shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in lines)
    return {name: value for name, value in pairs}


def test_default_ports_need_no_exports() -> None:
    assert second_terminal_exports(parse([])) == []


def test_each_non_default_part_is_exported_for_the_cli(tmp_path: Path) -> None:
    args = parse(["--emulator-port", "9123", "--handler-port", "9081", "--checkout-port", "9080",
                  "--smtp-port", "2025", "--data-dir", str(tmp_path / "other var")])
    env = exported(second_terminal_exports(args))
    settings = Settings.from_env(env)
    assert settings.tasks.emulator_host == "127.0.0.1:9123"
    assert settings.tasks.handler_url == "http://127.0.0.1:9081/"
    assert settings.tasks.checkout_url == "http://127.0.0.1:9080/"
    assert settings.store.data_dir == tmp_path / "other var"
    assert set(env) == {"CLOUD_TASKS_EMULATOR_HOST", "ORDERTASKS_HANDLER_URL", "ORDERTASKS_CHECKOUT_URL",
                        "ORDERTASKS_DATA_DIR"}     # the SMTP port matters to the stack's children only


def test_the_banner_prints_the_exports_and_the_log_directory(tmp_path: Path) -> None:
    args = parse(["--checkout-port", "9080", "--data-dir", str(tmp_path)])
    text = banner(args)
    assert "  export ORDERTASKS_CHECKOUT_URL=http://127.0.0.1:9080/\n" in text
    assert f"logs in {tmp_path}/logs/" in text
