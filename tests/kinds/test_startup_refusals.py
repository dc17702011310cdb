"""Catalog and registry are checked both ways at start-up: one message naming file, line and fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from ordertasks.handlers.config import CatalogError, Settings, load_catalog
from ordertasks.handlers.errors import ConfigurationError
from ordertasks.handlers.registry import KindRegistry
from ordertasks.handlers.wiring import check_startup
from ordertasks.infra.config import DEFAULT_CATALOG, REPO_ROOT

QUEUE = """
[queues.q-shop]
max_attempts = 3
"""


def catalog_with(tmp_path: Path, table: str) -> Path:
    """The shipped catalog plus a queue and ``table``, in a file of its own."""
    path = tmp_path / "tasks.toml"
    path.write_text(DEFAULT_CATALOG.read_text() + QUEUE + table)
    return path


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def refusal(path: Path) -> str:
    with pytest.raises(CatalogError) as caught:
        KindRegistry.from_catalog(load_catalog(path))
    return str(caught.value)


CASES = {
    "no code": ('[kinds.loyalty]\nqueue = "q-shop"\ndelay_seconds = 0\n', "has no code: add effect"),
    "module missing": ('[kinds.loyalty]\nqueue = "q-shop"\ndelay_seconds = 0\neffect = "no_such_shop_module:award"\n',
                       "module 'no_such_shop_module' does not import"),
    "attribute missing": ('[kinds.loyalty]\nqueue = "q-shop"\ndelay_seconds = 0\neffect = "json:no_such_thing"\n',
                          "json.no_such_thing is missing"),
    "not callable": ('[kinds.loyalty]\nqueue = "q-shop"\ndelay_seconds = 0\neffect = "json:__doc__"\n',
                     "is a str, not a @kind function"),
    "malformed effect": ('[kinds.loyalty]\nqueue = "q-shop"\ndelay_seconds = 0\neffect = "just-a-name"\n',
                         "must be \"package.module:attribute\""),
    "webhook without url": ('[kinds.crm]\nqueue = "q-shop"\ndelay_seconds = 0\n[kinds.crm.webhook]\ntoken_env = "T"\n',
                            "webhook needs url"),
    "effect and webhook": ('[kinds.crm]\nqueue = "q-shop"\ndelay_seconds = 0\neffect = "json:dumps"\n'
                           '[kinds.crm.webhook]\nurl = "https://crm.example/"\n', "not both"),
    "unknown queue": ('[kinds.crm]\nqueue = "q-nowhere"\ndelay_seconds = 0\n[kinds.crm.webhook]\nurl = "https://x.example/"\n',
                      "unknown queue 'q-nowhere'"),
    "unknown key": ('[kinds.crm]\nqueue = "q-shop"\ndelay_seconds = 0\nretries = 3\n', "unknown setting 'retries'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_refusal_names_the_file_the_line_and_the_fix(tmp_path: Path, case: str) -> None:
    table, expected = CASES[case]
    path = catalog_with(tmp_path, table)
    message = refusal(path) if case not in ("malformed effect", "webhook without url", "effect and webhook",
                                            "unknown queue", "unknown key") else _load_refusal(path)
    assert expected in message, message
    name = table.split("]")[0].removeprefix("[kinds.")
    start = line_of(path, f"[kinds.{name}]")
    assert message.startswith(f"{path}:"), message
    named_line = int(message[len(f"{path}:"):].split(":", 1)[0])
    assert start <= named_line < start + table.count("\n"), (start, message)   # the table or its key


def _load_refusal(path: Path) -> str:
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    return str(caught.value)


def test_a_kind_declared_twice_is_refused_by_the_toml_reader(tmp_path: Path) -> None:
    table = '[kinds.crm]\nqueue = "q-shop"\ndelay_seconds = 0\n' * 2
    message = _load_refusal(catalog_with(tmp_path, table))
    assert "not valid TOML" in message and "line" in message, message


def test_a_declaration_under_another_name_is_refused(tmp_path: Path) -> None:
    module = tmp_path / "shop_named.py"
    module.write_text("from ordertasks import kind\n\n@kind('award_points')\ndef award(task, ctx):\n    return {}\n")
    sys.path.insert(0, str(tmp_path))
    try:
        message = refusal(catalog_with(tmp_path, '[kinds.loyalty]\nqueue = "q-shop"\ndelay_seconds = 0\n'
                                                 'effect = "shop_named:award"\n'))
    finally:
        sys.path.remove(str(tmp_path))
    assert "is declared as kind 'award_points'" in message, message


def test_a_webhook_url_naming_an_unset_variable_stops_the_handler(tmp_path: Path) -> None:
    path = catalog_with(tmp_path, '[kinds.crm]\nqueue = "q-shop"\ndelay_seconds = 0\n'
                                  '[kinds.crm.webhook]\nurl = "${CRM_URL_FOR_TEST}"\n')
    with pytest.raises(ConfigurationError, match=r"uses \$\{CRM_URL_FOR_TEST\}, which is not set"):
        check_startup(Settings.from_env({"ORDERTASKS_CONFIG": str(path)}))
    settings = Settings.from_env({"ORDERTASKS_CONFIG": str(path), "CRM_URL_FOR_TEST": "https://crm.example/"})
    assert "crm" in check_startup(settings).webhooks


@pytest.mark.parametrize("command", [["handler", "--port", "1"], ["dev", "--emulator-port", "1"], ["stats"]])
def test_the_cli_refuses_with_the_message_and_no_traceback(tmp_path: Path, command: list[str]) -> None:
    path = catalog_with(tmp_path, '[kinds.loyalty]\nqueue = "q-shop"\ndelay_seconds = 0\n')
    args = command + (["--config", str(path)] if command[0] == "dev" else [])
    env = {"PATH": "/usr/bin:/bin", "ORDERTASKS_CONFIG": str(path), "ORDERTASKS_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "has no code: add effect" in done.stderr and f"{path}:" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_bare_kind_decorator_declares_the_kind_the_catalog_names(tmp_path: Path) -> None:
    """``@kind`` without parentheses, as dramatiq's ``@actor`` is used: a shop's first kind (it
    was a decorator factory only, so the function became ``declare`` and failed at every attempt)."""
    module = tmp_path / "shop_bare.py"
    module.write_text("from ordertasks import kind\n\n@kind\ndef award_points(task, ctx):\n"
                      "    return {'points': 10, 'order_id': task.order_id}\n")
    sys.path.insert(0, str(tmp_path))
    try:
        catalog = load_catalog(catalog_with(tmp_path, '[kinds.award_points]\nqueue = "q-shop"\ndelay_seconds = 0\n'
                                                      'effect = "shop_bare:award_points"\n'))
        declared = KindRegistry.from_catalog(catalog).kind("award_points")
    finally:
        sys.path.remove(str(tmp_path))
    assert declared.name == "award_points"
    assert declared.perform(SimpleNamespace(order_id="ord_1"), None) == {"points": 10, "order_id": "ord_1"}
