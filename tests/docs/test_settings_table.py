"""The README's settings table and the code agree, both ways.

Code → table: every variable ``Settings.from_env()`` asks for (recorded by handing it a mapping
that notes each lookup, local and cloud) and every variable the shipped catalog's webhooks read
has a row with a default. Table → code: every row names a variable the code asks for. (Any
``ORDERTASKS_*`` named anywhere in the docs changing the settings is
``tests/security/test_documented_settings.py``.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from ordertasks.handlers.config import Settings
from ordertasks.handlers.errors import ConfigurationError
from tests.security.test_documented_settings import DOCS, webhook_variables

README = Path(__file__).resolve().parents[2] / "README.md"
VARIABLE = re.compile(r"`((?:ORDERTASKS|CLOUD_TASKS)_[A-Z0-9_]+)`")
SHORTHAND = re.compile(r"`(_[A-Z0-9_]+)`")


class RecordingEnvironment(Mapping[str, str]):
    """An environment that remembers every name looked up in it."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values, self.asked = values, set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        return self.values[name]

    def __contains__(self, name: object) -> bool:
        self.asked.add(str(name))
        return name in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def names_the_code_reads() -> set[str]:
    """Variables ``Settings.from_env()`` looks up, locally and in the cloud, plus the webhooks'."""
    asked: set[str] = set()
    for values in ({}, {"ORDERTASKS_BACKEND": "cloud"}):
        env = RecordingEnvironment(values)
        try:
            Settings.from_env(env)
        except ConfigurationError:
            pass
        asked |= env.asked
    return {n for n in asked if n.startswith(("ORDERTASKS_", "CLOUD_TASKS_"))} | webhook_variables()


def settings_rows() -> dict[str, tuple[int, str]]:
    """Variable → (README line, default cell) of the table under ``## Settings``."""
    rows: dict[str, tuple[int, str]] = {}
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("## Settings")
    for number, line in enumerate(lines[start + 1:], start=start + 2):
        if line.startswith("## "):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) < 3 or not (names := VARIABLE.findall(cells[0])):
            continue
        prefix = names[0].rsplit("_", 1)[0]
        for name in names + [prefix + s for s in SHORTHAND.findall(cells[0])]:
            rows[name] = (number, cells[1])
    return rows


def test_the_table_is_found() -> None:
    """Guards the parser: a changed heading or layout would otherwise check nothing."""
    assert {"ORDERTASKS_BACKEND", "CLOUD_TASKS_EMULATOR_HOST", "ORDERTASKS_SMTP_PORT"} <= set(settings_rows())


@pytest.mark.parametrize("name", sorted(names_the_code_reads()))
def test_every_setting_the_code_reads_has_a_row_with_its_default(name: str) -> None:
    rows = settings_rows()
    assert name in rows, f"README.md (## Settings): no row for {name}, which the code reads (Settings.from_env() or a webhook)"
    line, default = rows[name]
    assert default, f"README.md:{line}: the row for {name} gives no default (write – when it has none)"


def test_every_row_names_a_setting_the_code_reads() -> None:
    read = names_the_code_reads()
    stale = [f"README.md:{line}: {name} is in the settings table, but nothing reads it"
             for name, (line, _) in sorted(settings_rows().items()) if name not in read]
    assert not stale, "\n".join(stale)


def test_every_emulator_variable_a_doc_names_is_read() -> None:
    """The ``ORDERTASKS_*`` names are checked in tests/security; this covers the one other prefix."""
    read = names_the_code_reads()
    unknown = [f"{doc.relative_to(README.parent)}:{n}: {name} is not read by the code"
               for doc in DOCS for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1)
               for name in re.findall(r"\bCLOUD_TASKS_[A-Z0-9_]+", line) if name not in read]
    assert not unknown, "\n".join(unknown)
