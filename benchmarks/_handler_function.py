"""functions-framework source of the handler_overhead benchmark: the real ``handle_task``
(OIDC on, SQLite store, claim/complete, one log line) with ``record_analytics`` performed by
a no-op, so the figure is the handler's own overhead and not an effect's work.

Built through ``functions.main.build_handler(settings, effects=...)`` from
``ORDERTASKS_*`` on the first request, as ``functions/main.py`` builds the product.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import flask

from ordertasks.functions.main import build_handler
from ordertasks.handlers.contract import Task
from ordertasks.handlers.kind import EffectContext
from ordertasks.infra.config import Settings

NOOP_KIND = "record_analytics"
_handler: Callable[[flask.Request], flask.Response] | None = None
_lock = threading.Lock()


def noop_effect(task: Task, ctx: EffectContext) -> dict[str, Any]:
    """Perform nothing; the dispatcher still claims and completes the effect around it."""
    return {}


def _build() -> Callable[[flask.Request], flask.Response]:
    global _handler
    with _lock:
        if _handler is None:
            _handler = build_handler(Settings.from_env(), effects={NOOP_KIND: noop_effect})
        return _handler


def handle_task(request: flask.Request) -> flask.Response:
    """functions-framework target."""
    return (_handler or _build())(request)
