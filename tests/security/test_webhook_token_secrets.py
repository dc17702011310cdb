"""Issue 28, F3: a webhook token ending in a newline was written in full ('Bearer sk_live_…\\n') to
failed-task records and the handler's log.

Such a token now stops the handler at start, with a message naming its variable and never
quoting it; and a token the far end echoes back is redacted wherever the client reports it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ordertasks.handlers.errors import ConfigurationError
from ordertasks.infra.config import Settings
from tests.security.webhook_stack import KIND, REPO, TOKEN, Echo, StackFactory, assert_nowhere, cli, record_texts
from tests.security.webhook_stack import make_stack  # noqa: F401 - the fixture these tests use
from tests.support.servers import free_port


# --- tokens ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["ORDERTASKS_WAREHOUSE_TOKEN", "CRM_TOKEN"])
def test_a_token_with_a_trailing_newline_stops_start_up_naming_the_variable(variable: str, tmp_path: Path) -> None:
    """Attack: a secret stored with `echo` ends in "\\n"; the handler wrote 'Bearer sk_live_…\\n' to
    the failed-task log and its log on every task."""
    catalog = tmp_path / "tasks.toml"
    catalog.write_text((REPO / "infra" / "tasks.toml").read_text() + '\n[queues.q-crm]\n\n[kinds.sync_crm]\n'
                       'queue = "q-crm"\ndelay_seconds = 0\n[kinds.sync_crm.webhook]\nurl = "https://crm.example/"\n'
                       'token_env = "CRM_TOKEN"\n')
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_env({"ORDERTASKS_CONFIG": str(catalog), variable: TOKEN + "\n"})
    assert str(refused.value).startswith(f"{variable} ends with a line break") and TOKEN not in str(refused.value)


def test_the_handler_process_refuses_to_start_with_such_a_token(tmp_path: Path) -> None:
    """Attack: as above, through `ordertasks handler`: it must not start, and must not print the token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERTASKS_", "CLOUD_TASKS_"))}
    env.update({"ORDERTASKS_DATA_DIR": str(tmp_path), "ORDERTASKS_WAREHOUSE_TOKEN": TOKEN + "\n"})
    done = subprocess.run([sys.executable, str(REPO / "cli.py"), "handler", "--port", str(free_port())], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "ORDERTASKS_WAREHOUSE_TOKEN ends with a line break" in done.stderr
    assert TOKEN not in done.stderr + done.stdout


def test_a_far_end_echoing_the_token_never_puts_it_in_the_record_or_the_log(
        make_stack: StackFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Attack: a 401 whose body quotes our Authorization header lands, token and all, in the record."""
    echo = Echo()
    stack = make_stack({"ORDERTASKS_WAREHOUSE_URL": f"http://127.0.0.1:{echo.port}/notifications",
                        "ORDERTASKS_WAREHOUSE_TOKEN": TOKEN})
    assert stack.deliver(stack.task(KIND, "ord_echo")).json()["outcome"] == "dead"
    texts = record_texts(stack, "ord_echo")
    assert "401" in texts[0] and "[redacted]" in texts[0]
    log = capsys.readouterr().out
    assert_nowhere([*texts, log, cli(tmp_path, "failed", "list"), cli(tmp_path, "failed", "show", f"ord_echo:{KIND}")])
    echo.server.shutdown()
    echo.server.server_close()
