"""Item 9: every ``ORDERTASKS_*`` setting the docs name is one ``Settings.from_env()`` reads.

A documented name the code ignores is worse than none: ``ORDERTASKS_CHECKOUT_AUDIENCE`` was
set by people who believed it pinned the ``/internal/*`` audience, while the code kept
expecting ``http://127.0.0.1:8080/``. Each name is set alone to a probe value; the settings
must change somewhere other than the raw copies of the environment they keep.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

import pytest

from ordertasks.handlers.config import ENV_REFERENCE, Settings, load_catalog
from ordertasks.handlers.registry import KindRegistry
from ordertasks.handlers.errors import ConfigurationError

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted({REPO / "README.md", *REPO.glob("docs/**/*.md"), *REPO.glob("infra/**/*.md"),
               *REPO.glob("benchmarks/**/*.md")})
NAME = re.compile(r"`(ORDERTASKS_[A-Z0-9_]+)`((?:,\s*`_[A-Z0-9_]+`)*)")
SHORTHAND = re.compile(r"`(_[A-Z0-9_]+)`")
PROBES = ("2", "off", "on", "cloud", "sequential", "stripe", "rest", "probe.example", "http://probe.example/", "probe")
RAW_COPIES = ("environment",)


def documented_names() -> dict[str, str]:
    """Name → the doc naming it; ``ORDERTASKS_SMTP_HOST``, ``_PORT`` expands to ``ORDERTASKS_SMTP_PORT``."""
    names: dict[str, str] = {}
    for doc in DOCS:
        for match in NAME.finditer(doc.read_text(encoding="utf-8")):
            prefix = match.group(1).rsplit("_", 1)[0]
            for name in [match.group(1), *(prefix + s for s in SHORTHAND.findall(match.group(2)))]:
                names.setdefault(name, str(doc.relative_to(REPO)))
    return names


def effective(settings: Settings) -> dict[str, object]:
    return {k: v for k, v in asdict(settings).items() if k not in RAW_COPIES}


def webhook_variables() -> set[str]:
    """Variables the shipped catalog's webhook kinds read (the warehouse's ``ORDERTASKS_WAREHOUSE_*``)."""
    names: set[str] = set()
    for target in KindRegistry.from_catalog(load_catalog()).webhooks.values():
        names |= {m.group(1) for m in ENV_REFERENCE.finditer(f"{target.url} {target.timeout_seconds}")}
        names |= {target.token_env} if target.token_env else set()
    return names


def is_read(name: str) -> bool:
    if name in webhook_variables() and name in Settings.from_env({name: "probe"}).environment:
        return True
    baseline = effective(Settings.from_env({}))
    for probe in PROBES:
        try:
            if effective(Settings.from_env({name: probe})) != baseline:
                return True
        except (ConfigurationError, ValueError):
            continue
    return False


def test_the_docs_name_settings_at_all() -> None:
    """Attack: none; guards the scan itself (a broken pattern would pass everything)."""
    names = documented_names()
    assert {"ORDERTASKS_OIDC_VERIFY", "ORDERTASKS_CHECKOUT_URL", "ORDERTASKS_SMTP_PORT"} <= set(names)


@pytest.mark.parametrize("name", sorted(documented_names()))
def test_every_documented_setting_is_read(name: str) -> None:
    """Attack: an operator sets a documented variable the code never reads (e.g. ORDERTASKS_CHECKOUT_AUDIENCE)."""
    assert is_read(name), f"{documented_names()[name]} documents {name}, but Settings.from_env() ignores it"
