"""A shop's project for the deploy tests: a catalog that extends the shipped one (no warehouse,
no checkout of ours, a code kind and a webhook kind of its own) and the module of its code kind."""

from __future__ import annotations

from pathlib import Path

from ordertasks.infra.config import REPO_ROOT

SHOP_CATALOG = """
extends = "builtin"
drop = ["kinds.notify_warehouse", "queues.ordertasks-warehouse", "checkout"]

[queues.shop-crm]
max_dispatches_per_second = 5
max_attempts = 8

[kinds.award_points]
queue = "shop-crm"
delay_seconds = 10
dispatch_deadline_seconds = 60
effect = "shop_kinds:award_points"

[kinds.sync_crm]
queue = "shop-crm"
delay_seconds = 0
dispatch_deadline_seconds = 60

[kinds.sync_crm.webhook]
url = "${SHOP_CRM_URL}"
token_env = "SHOP_CRM_TOKEN"

[cloud]
smtp_host = "smtp.relay.my-shop.com"
smtp_username = "apikey"
mail_from = "My Shop <orders@my-shop.com>"
seller_name = "My Shop Ltd"
seller_address = "1 Market Street, 10115 Berlin, DE"
notification_channel = "projects/shop-test/notificationChannels/1234567890"

[cloud.env]
SHOP_CRM_URL = "https://crm.my-shop.com/orders"

[cloud.secrets]
ORDERTASKS_SMTP_PASSWORD = "smtp-password"
SHOP_CRM_TOKEN = "crm-token"
"""
SHOP_KINDS = '''"""The shop's own kind: its code reads the CRM URL the deployment sets from [cloud.env]."""

import os

from ordertasks import EffectContext, Task, kind


@kind
def award_points(task: Task, ctx: EffectContext) -> dict[str, str]:
    """Award loyalty points in the CRM (the far end is the test's concern, not this module's)."""
    return {"crm": os.environ["SHOP_CRM_URL"], "order_id": task.order_id}
'''


def write_shop(directory: Path, catalog: str = SHOP_CATALOG) -> Path:
    """The shop's project directory (outside the repository): ``tasks.toml`` and ``shop_kinds.py``."""
    directory.mkdir(parents=True, exist_ok=True)
    assert REPO_ROOT not in directory.resolve().parents
    (directory / "tasks.toml").write_text(catalog, encoding="utf-8")
    (directory / "shop_kinds.py").write_text(SHOP_KINDS, encoding="utf-8")
    return directory
