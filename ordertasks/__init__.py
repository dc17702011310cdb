"""ordertasks: an order's side effects on Google Cloud Tasks, each exactly once in effect.

The public surface, in one place (``tests/test_exported_members.py`` keeps it honest):

- declaring a side effect: ``kind``, ``Kind``, ``Task``, ``EffectContext``, ``OrderSnapshot``
  and the errors a ``perform`` raises: ``RetryableError`` (try again later),
  ``PermanentError`` (record a failed task, do not retry);
- scheduling an order's side effects from any checkout: ``OrderTasks``, or ``AsyncOrderTasks``
  (the same calls as coroutines, for asyncio code).

Everything else lives in the project's packages, which import as ``ordertasks.handlers``
(the core), ``ordertasks.producer``, ``ordertasks.functions`` and ``ordertasks.infra``, so
installing ordertasks adds one top-level name to an environment, ``ordertasks``. In a
checkout of the repository those folders sit beside this one; an installed wheel has them
inside it. The names below load on first use, so ``import ordertasks.infra.emulator`` does
not pull in the checkout's dependencies.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

_HERE = Path(__file__).resolve().parent
if not (_HERE / "handlers").is_dir() and (_HERE.parent / "handlers" / "__init__.py").is_file():
    __path__.append(str(_HERE.parent))  # a checkout: ordertasks.handlers is ../handlers

if TYPE_CHECKING:
    from ordertasks.handlers.contract import OrderSnapshot, Task
    from ordertasks.handlers.errors import (ConfigurationError, DependencyUnavailable, OrderTasksError,
                                            PermanentError, Rejected, RetryableError, Throttled)
    from ordertasks.handlers.kind import EffectContext, Kind, kind
    from ordertasks.producer.async_library import AsyncOrderTasks
    from ordertasks.producer.library import OrderConflict, OrderNotFound, OrderTasks, TaskResult

_HOME = {
    "AsyncOrderTasks": "ordertasks.producer.async_library",
    "OrderSnapshot": "ordertasks.handlers.contract",
    "Task": "ordertasks.handlers.contract",
    "ConfigurationError": "ordertasks.handlers.errors",
    "DependencyUnavailable": "ordertasks.handlers.errors",
    "OrderTasksError": "ordertasks.handlers.errors",
    "PermanentError": "ordertasks.handlers.errors",
    "Rejected": "ordertasks.handlers.errors",
    "RetryableError": "ordertasks.handlers.errors",
    "Throttled": "ordertasks.handlers.errors",
    "EffectContext": "ordertasks.handlers.kind",
    "Kind": "ordertasks.handlers.kind",
    "kind": "ordertasks.handlers.kind",
    "OrderConflict": "ordertasks.producer.library",
    "OrderNotFound": "ordertasks.producer.library",
    "OrderTasks": "ordertasks.producer.library",
    "TaskResult": "ordertasks.producer.library",
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    """Load a public name from the module that defines it, on first use."""
    if name not in _HOME:
        raise AttributeError(f"module 'ordertasks' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
