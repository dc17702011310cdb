"""``run_maintenance``: the outbox reconcile and the console-replay sweep, from the handler's
own deployment, so Cloud Scheduler needs no checkout of ours. ``reconcile`` also runs the
auditor (``producer.audit``): owed effects Cloud Tasks dropped are created again, then
recorded as failed. When an outbox database is named (``ORDERTASKS_OUTBOX_URL``, or the
catalog's ``[outbox] database_url``), ``reconcile`` first relays the transactional outbox's
committed rows (``producer.outbox``: what a crash between a shop's commit and its ``relay()``
left behind); ``{"action": "relay"}`` relays alone.

A second functions-framework target in the same source as ``handle_task`` (the root
``main.py`` exports both). Cloud Scheduler POSTs ``{"action": "reconcile"}`` (optionally
``"grace_seconds"``, default 60) or ``{"action": "sweep"}`` (or calls ``/reconcile`` / ``/sweep``) with an OIDC token, which is
verified like a task's: audience ``ORDERTASKS_MAINTENANCE_URL`` (default: the handler URL),
caller ``ORDERTASKS_OIDC_ALLOWED_EMAILS`` or else the catalog's ``scheduler`` service account
(the dispatcher's when the catalog names none).

    200  {"action": ..., ...summary}
    400  unknown action          401 / 403  missing or invalid token / another caller
    503  a dependency is down (Cloud Scheduler retries)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import flask

from ordertasks.handlers.config import Settings
from ordertasks.handlers.errors import AuthError, DependencyUnavailable
from ordertasks.handlers.logs import log_line
from ordertasks.handlers.oidc import CertCache, TokenVerifier
from ordertasks.handlers.startup import startup_failure as failed_start
from ordertasks.producer.library import OrderTasks

ACTIONS = ("reconcile", "sweep", "relay")
# One Cloud Scheduler run (every 5 minutes) audits this many owed effects at most and stops
# after this long, inside Cloud Scheduler's default 180 s attempt deadline; what is left is
# due at the next run.
AUDIT_LIMIT = 50_000
AUDIT_SECONDS = 150.0
RELAY_LIMIT = 2_000          # outbox orders relayed per run; the shop's own relay() does the rest


def maintenance_verifier(settings: Settings) -> TokenVerifier:
    """Tokens for the maintenance URL, from the scheduler's service account."""
    catalog = settings.catalog()
    role = "scheduler" if "scheduler" in catalog.service_accounts else "dispatcher"
    allowed = settings.oidc.allowed_emails or (catalog.service_account_email(role),)
    audience = settings.tasks.maintenance_url or settings.tasks.handler_url
    return TokenVerifier(CertCache(settings.certs_url), audiences=[audience], allowed_emails=allowed)


def _json(status: int, payload: dict[str, Any]) -> flask.Response:
    return flask.Response(json.dumps(payload), status=status, mimetype="application/json")


def requested_action(request: flask.Request) -> str | None:
    """``reconcile`` / ``sweep`` from the path or the JSON body, else ``None``."""
    path = request.path.strip("/")
    if path in ACTIONS:
        return path
    body = request.get_json(silent=True, cache=True)
    action = body.get("action") if isinstance(body, dict) else None
    return action if action in ACTIONS else None


def grace_seconds(request: flask.Request) -> float | None:
    """The body's ``grace_seconds`` (default 60: younger entries are still being enqueued)."""
    body = request.get_json(silent=True, cache=True)
    value = body.get("grace_seconds", 60.0) if isinstance(body, dict) else 60.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 86400:
        return None
    return float(value)


class Maintenance:
    """The WSGI-level maintenance endpoint: auth, action, summary."""

    def __init__(self, tasks: OrderTasks, verifier: TokenVerifier) -> None:
        self.tasks, self.verifier = tasks, verifier

    def __call__(self, request: flask.Request) -> flask.Response:
        """Run the requested action once."""
        if request.method != "POST":
            return _json(405, {"error": "maintenance runs on POST"})
        try:
            caller = self.verifier.verify(request.headers.get("Authorization"))
        except AuthError as exc:
            return _json(exc.status, {"error": str(exc)})
        action = requested_action(request)
        if action is None:
            return _json(400, {"error": f"say which action: POST {{\"action\": one of {list(ACTIONS)}}}"})
        grace = grace_seconds(request)
        if grace is None:
            return _json(400, {"error": "grace_seconds must be a number of seconds between 0 and 86400"})
        try:
            summary = self._run(action, grace)
        except DependencyUnavailable as exc:
            log_line("WARNING", f"maintenance {action} deferred: {exc}", {}, action=action)
            return _json(503, {"error": f"{action} could not run now; it will be retried"})
        log_line("INFO", f"maintenance {action} done", {}, action=action, caller=caller.email, **summary)
        return _json(200, {"action": action, **summary})

    def _run(self, action: str, grace: float) -> dict[str, Any]:
        relayed = self._relay() if action in ("reconcile", "relay") else None
        if action == "relay":
            return {"relay": relayed}
        if action == "reconcile":
            summary = self.tasks.reconcile(grace_seconds=grace, audit_limit=AUDIT_LIMIT, audit_seconds=AUDIT_SECONDS)
            return summary.as_dict() | ({"relay": relayed} if relayed is not None else {})
        results = self.tasks.sweep()
        return {"replayed": sum(1 for r in results if r.status in ("created", "exists")), "seen": len(results)}

    def _relay(self) -> dict[str, int] | None:
        """The transactional outbox's committed rows, relayed; ``None`` when no outbox database is named."""
        from ordertasks.producer.outbox.relay import outbox_database_url

        if outbox_database_url(self.tasks.settings) is None:
            return None
        return self.tasks.relay(limit=RELAY_LIMIT).as_dict()


def build_maintenance(settings: Settings) -> Maintenance:
    """The endpoint over ``OrderTasks.from_settings`` and the maintenance verifier."""
    return Maintenance(OrderTasks.from_settings(settings), maintenance_verifier(settings))


_endpoint: Callable[[flask.Request], flask.Response] | None = None
_lock = threading.Lock()


def _build() -> Callable[[flask.Request], flask.Response]:
    """The endpoint, built once under the lock; a failure is raised, so the next request retries."""
    global _endpoint
    with _lock:
        if _endpoint is None:
            _endpoint = build_maintenance(Settings.from_env())
        return _endpoint


def startup_failure(exc: Exception) -> flask.Response:
    """The 503 with ``Retry-After`` for an endpoint that could not build itself (``handlers.startup``)."""
    status, body, headers = failed_start("maintenance", exc)
    response = _json(status, body)
    response.headers.update(headers)
    return response


def run_maintenance(request: flask.Request) -> flask.Response:
    """functions-framework target: ``--entry-point=run_maintenance``; a failed start-up answers 503."""
    try:
        endpoint = _endpoint or _build()
    except Exception as exc:  # noqa: BLE001 - a start-up failure answers 503, never a 500 with a traceback
        return startup_failure(exc)
    return endpoint(request)
