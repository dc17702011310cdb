"""Issue 28, F4: a secret in a webhook URL (``?api_key=…``, ``user:pass@``) appeared in
failed-task records, ``ordertasks failed list|show`` and the handler's log.

URL query strings and userinfo, ``Authorization`` headers and secret-named fields are redacted
where the failed-task report is built (``Dispatcher._write_failure``), in the webhook client's
own messages and in every log line; each test reads the record, the real CLI's output and the
handler's stdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ordertasks.handlers.contract import Task
from ordertasks.handlers.errors import Rejected
from ordertasks.handlers.kind import EffectContext
from ordertasks.infra.warehouse_standin import WarehouseStandIn
from tests.security.webhook_stack import API_KEY, KIND, PASSWORD, TOKEN, StackFactory, assert_nowhere, cli, record_texts
from tests.security.webhook_stack import make_stack  # noqa: F401 - the fixture these tests use
from tests.support.servers import free_port


# --- URLs -----------------------------------------------------------------------------------------


def test_a_url_with_a_key_and_a_password_never_shows_them(
        make_stack: StackFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Attack: ORDERTASKS_WAREHOUSE_URL=https://ops:PASS@wms/…?api_key=KEY appeared in failed records,
    `failed list/show` and the handler log whenever the warehouse refused or was down."""
    warehouse = WarehouseStandIn(port=free_port(), mode="reject").start()
    port = warehouse.server.server_address[1]
    stack = make_stack({"ORDERTASKS_WAREHOUSE_URL": f"http://ops:{PASSWORD}@127.0.0.1:{port}/notifications"
                                                    f"?api_key={API_KEY}"})
    assert stack.deliver(stack.task(KIND, "ord_url")).json()["outcome"] == "dead"
    warehouse.stop()                                                  # and now it is down
    assert stack.deliver(stack.task(KIND, "ord_down")).json()["outcome"] == "retry"
    texts = record_texts(stack, "ord_url")
    assert "422" in texts[0] and "http://[redacted]@127.0.0.1" in texts[0] and "?[redacted]" in texts[0]
    log = capsys.readouterr().out
    assert "unreachable" in log and "[redacted]" in log
    assert_nowhere([*texts, log, cli(tmp_path, "failed", "list"), cli(tmp_path, "failed", "show", f"ord_url:{KIND}")])


# --- anything else a kind raises --------------------------------------------------------------------


def leaky(task: Task, ctx: EffectContext) -> dict[str, Any]:
    """A shop's own effect whose error quotes the request it made: headers and URL, secrets and all."""
    raise Rejected(f"POST https://crm.example/v1/orders?api_key={API_KEY} failed; sent "
                   f"{{'Authorization': 'Bearer {TOKEN}', 'X-Api-Key': '{API_KEY}'}} password={PASSWORD}")


def test_a_kinds_error_is_redacted_where_the_failed_report_is_built(
        make_stack: StackFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Attack: any effect's exception text (not only the webhook client's) is stored and logged as is."""
    stack = make_stack({}, effects={KIND: leaky})
    assert stack.deliver(stack.task(KIND, "ord_leak")).json()["outcome"] == "dead"
    texts = record_texts(stack, "ord_leak")
    assert "https://crm.example/v1/orders?[redacted]" in texts[0] and "'Authorization': '[redacted]'" in texts[0]
    log = capsys.readouterr().out
    assert "https://crm.example/v1/orders?[redacted]" in log
    assert_nowhere([*texts, log, cli(tmp_path, "failed", "list"), cli(tmp_path, "failed", "show", f"ord_leak:{KIND}")])
