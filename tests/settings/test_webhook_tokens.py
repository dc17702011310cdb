"""Webhook tokens are read once, at start: one that cannot be an HTTP header value stops the
process with a message naming its variable, never quoting it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ordertasks.handlers.config import DEFAULT_CATALOG, Settings
from ordertasks.handlers.errors import ConfigurationError

SECRET = "tok_live_0123456789abcdef"


def refusal(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env(environ)
    return str(raised.value)


@pytest.mark.parametrize("value, problem", [(SECRET + "\n", "ends with a line break"),
                                            (SECRET + "\r\n", "ends with a line break"),
                                            (SECRET[:5] + "\x1b" + SECRET[5:], "holds a control character"),
                                            (SECRET[:5] + "\t" + SECRET[5:], "holds a control character"),
                                            (" " + SECRET, "starts or ends with white space")])
def test_an_unsendable_warehouse_token_is_refused_by_name(value: str, problem: str) -> None:
    message = refusal({"ORDERTASKS_WAREHOUSE_TOKEN": value})
    assert message.startswith(f"ORDERTASKS_WAREHOUSE_TOKEN {problem}:"), message
    assert SECRET not in message and SECRET[5:] not in message


def test_a_catalog_token_env_is_checked_too(tmp_path: Path) -> None:
    catalog = tmp_path / "tasks.toml"
    catalog.write_text(DEFAULT_CATALOG.read_text() + '\n[queues.q-crm]\n\n[kinds.sync_crm]\nqueue = "q-crm"\n'
                       'delay_seconds = 0\n[kinds.sync_crm.webhook]\nurl = "https://crm.example/"\n'
                       'token_env = "CRM_API_SECRET"\n')
    message = refusal({"ORDERTASKS_CONFIG": str(catalog), "CRM_API_SECRET": SECRET + "\n"})
    assert message.startswith("CRM_API_SECRET ends with a line break") and SECRET not in message
    # A variable no token_env names is not a token: it is neither read nor checked.
    assert Settings.from_env({"ORDERTASKS_CONFIG": str(catalog), "OTHER": "x\n"}).environment.get("OTHER") is None


def test_sendable_or_unset_tokens_start() -> None:
    assert Settings.from_env({"ORDERTASKS_WAREHOUSE_TOKEN": SECRET}).environment["ORDERTASKS_WAREHOUSE_TOKEN"] == SECRET
    assert "ORDERTASKS_WAREHOUSE_TOKEN" not in Settings.from_env({}).environment
    Settings.from_env({"ORDERTASKS_WAREHOUSE_TOKEN": ""})   # empty means unset: no token is sent
