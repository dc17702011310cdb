"""ordertasks: an order's side effects on Google Cloud Tasks, each exactly once in effect.

The public surface, in one place (``tests/test_exported_members.py`` keeps it honest):

- declaring a side effect: ``kind``, ``Kind``, ``Task``, ``EffectContext``, ``OrderSnapshot``
  and the errors a ``perform`` raises: ``RetryableError`` (try again later),
  ``PermanentError`` (record a failed task, do not retry);
- scheduling an order's side effects from any checkout: ``OrderTasks``.

The code lives in the project's packages (``handlers``, ``producer``, ``infra``); this
module only names what users may rely on.
"""

from handlers.contract import OrderSnapshot, Task
from handlers.errors import (ConfigurationError, DependencyUnavailable, OrderTasksError, PermanentError, Rejected,
                             RetryableError, Throttled)
from handlers.kind import EffectContext, Kind, kind
from producer.library import OrderConflict, OrderNotFound, OrderTasks, TaskResult

__all__ = [
    "ConfigurationError",
    "DependencyUnavailable",
    "EffectContext",
    "Kind",
    "OrderConflict",
    "OrderNotFound",
    "OrderSnapshot",
    "OrderTasks",
    "OrderTasksError",
    "PermanentError",
    "Rejected",
    "RetryableError",
    "Task",
    "TaskResult",
    "Throttled",
    "kind",
]
