"""``ordertasks.testing``: run an order's side effects in a unit test, in milliseconds.

    from ordertasks.testing import local_order_tasks

    with local_order_tasks("shop/tasks.toml") as tasks:   # or ORDERTASKS_CONFIG, or the shipped catalog
        tasks.schedule(order)
        tasks.advance(10)                                 # seconds or a timedelta
        assert [d.outcome for d in tasks.run_due()] == ["done", "done"]

With pytest the fixture ``ordertasks_local`` is the same object, made and closed per test
(the plugin ``ordertasks.testing.pytest_plugin``, registered as the ``pytest11`` entry point
``ordertasks``: installing ordertasks is enough). ``docs/testing.md`` shows a shop's test.

The public names (they load on first use, so the plugin costs a pytest run nothing):

- ``local_order_tasks``, ``LocalOrderTasks``: ``OrderTasks`` over memory stores and an
  in-process queue, with ``advance``, ``run_due``, ``run_all``, ``sent_emails``, ``blobs``,
  ``webhook_calls``, ``webhooks`` and ``failed_tasks``;
- ``Delivered``: one delivery ``run_due`` made (kind, order id, attempt, outcome, error);
- ``ManualClock``, ``InProcessCloudTasks``, ``MemoryBlobStore``, ``MemoryMailer``,
  ``MemoryWebhook``, ``WebhookCall``: the parts, for wiring of your own.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ordertasks.handlers.backends.memory_far_ends import MemoryBlobStore, MemoryMailer, MemoryWebhook, WebhookCall
    from ordertasks.producer.inprocess_tasks import InProcessCloudTasks
    from ordertasks.producer.local_tasks import Delivered, LocalOrderTasks, ManualClock, local_order_tasks

_HOME = {
    "MemoryBlobStore": "ordertasks.handlers.backends.memory_far_ends",
    "MemoryMailer": "ordertasks.handlers.backends.memory_far_ends",
    "MemoryWebhook": "ordertasks.handlers.backends.memory_far_ends",
    "WebhookCall": "ordertasks.handlers.backends.memory_far_ends",
    "InProcessCloudTasks": "ordertasks.producer.inprocess_tasks",
    "Delivered": "ordertasks.producer.local_tasks",
    "LocalOrderTasks": "ordertasks.producer.local_tasks",
    "ManualClock": "ordertasks.producer.local_tasks",
    "local_order_tasks": "ordertasks.producer.local_tasks",
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    """Load a public name from the module that defines it, on first use."""
    if name not in _HOME:
        raise AttributeError(f"module 'ordertasks.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
