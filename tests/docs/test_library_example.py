"""docs/library.md's first example does what its comments say, against ``ordertasks dev``.

The order is refunded at once, so its customer gets at most the confirmation email (the one
task due at once); the 24 h follow-up and the 7-day review request wait their day, so the
cancel deletes them and they are never sent. With a ``placed_at`` in the past, as the example
once had, every task was due at once: whether the customer of the cancelled order got all three
emails was a race between the cancel and the emulator's dispatch.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

from google.api_core.exceptions import NotFound

from ordertasks import OrderTasks
from ordertasks.handlers.ports import EffectState
from tests.docs.blocks import Block, runnable_blocks
from tests.docs.terminal import Terminal
from tests.docs.test_doc_blocks import python_source
from tests.support.servers import wait_until

LATER_EMAILS = {"send_followup_email": timedelta(hours=24), "request_review": timedelta(days=7)}


def first_example() -> Block:
    """The first python block of docs/library.md."""
    return next(b for b in runnable_blocks() if b.doc == "docs/library.md" and b.lang == "python")


def emails_for(mail_dir: Path, order_id: str) -> list[str]:
    """The kind of every email the stack's SMTP sink received for the order."""
    kinds = []
    for path in sorted(mail_dir.glob("*.eml")):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes(), headersonly=True)
        if message["X-Ordertasks-Order"] == order_id:
            kinds.append(str(message["X-Ordertasks-Kind"]))
    return kinds


def nothing_left_to_run(tasks: OrderTasks, order_id: str) -> bool:
    """No task of the order is left in Cloud Tasks and none of its effects is running: every
    email that will ever go out for it has gone."""
    for view in tasks.status(order_id)["tasks"]:
        effect = tasks.effects.get_effect(order_id, view["kind"])
        if effect is not None and effect.state == EffectState.IN_PROGRESS:
            return False
        try:
            tasks.enqueuer.client.get_task(name=view["task_name"])
            return False
        except NotFound:
            continue
    return True


def test_a_refund_at_once_leaves_the_customer_one_email_at_most(terminal: Terminal) -> None:
    block = first_example()
    source = python_source(block) + '\nprint("ORDER", order["order_id"])\n'

    done = terminal.python(terminal.substitute(source, block), block.doc, terminal.block_env(block))

    assert done.returncode == 0, done.stderr
    ran_at = datetime.now(UTC)
    order_id = re.search(r"^ORDER (\S+)$", done.stdout, re.M)[1]     # type: ignore[index]
    with OrderTasks.from_env(terminal.env) as tasks:
        wait_until(lambda: nothing_left_to_run(tasks, order_id), timeout=30, interval=0.2,
                   what=f"the tasks of {order_id} to be done or deleted")
        views = {view["kind"]: view for view in tasks.status(order_id)["tasks"]}
    for kind, delay in LATER_EMAILS.items():
        assert views[kind]["state"] == "cancelled", views[kind]
        due = datetime.fromisoformat(views[kind]["schedule_time"])
        assert due > ran_at + delay - timedelta(minutes=5), f"{kind} was due at {due}, not {delay} after the order"
    assert emails_for(terminal.data_dir / "mail", order_id) in ([], ["send_confirmation_email"])
