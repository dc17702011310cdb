"""The Cloud Functions (gen2) HTTP entry point: ``handle_task``.

Reads the ``X-CloudTasks-*`` headers, verifies the OIDC token, runs the delivery through
``handlers.dispatch`` and maps its outcome to an HTTP status — here and nowhere else:

    outcome      HTTP  why
    DONE         200   the effect happened now
    DUPLICATE    200   the effect had already happened
    CANCELLED    200   the order was cancelled: nothing to do, nothing to triage
    DEAD         200   permanent error, or retryable on the final attempt; the failed-task
                       record was written before answering
    RETRY        503   retryable and attempts remain (Retry-After when known), or the
                       failed-task record could not be written
    auth         401 / 403  missing/invalid token / valid token, wrong service account
                 503   the token's signing certificates cannot be fetched (Retry-After)
    too large    413   body over ``MAX_BODY`` (read only after authentication, never
                       buffered past the limit: ``functions/request_body.py``)
    start-up     503   the handler could not build itself, Retry-After always: a bad
    failed             setting (CRITICAL log naming it), a dependency down (the store
                       locked or unreachable: ERROR log naming it), or any other error
                       (ERROR log with its type and message); never a 500 with a traceback

Built lazily on the first request from ``Settings.from_env()`` (no work at import time); a
build that failed is tried again by the next request.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import flask

from ordertasks.functions.request_body import discard_body, take_body
from ordertasks.handlers import wiring
from ordertasks.handlers.cloud_readiness import require_cloud_ready
from ordertasks.handlers.config import Settings
from ordertasks.handlers.dispatch import Delivery, Dispatcher, Outcome, Result
from ordertasks.handlers.errors import AuthError, DependencyUnavailable
from ordertasks.handlers.logs import TRACE_KEY, log_line, trace_field
from ordertasks.handlers.oidc import TokenVerifier
from ordertasks.handlers.startup import startup_failure as failed_start
from ordertasks.handlers.tracing import NO_TRACING, Span, Tracing, tracing_for

STATUS: dict[Outcome, int] = {
    Outcome.DONE: 200,
    Outcome.DUPLICATE: 200,
    Outcome.CANCELLED: 200,
    Outcome.DEAD: 200,
    Outcome.RETRY: 503,
}
SEVERITY: dict[Outcome, str] = {
    Outcome.DONE: "INFO",
    Outcome.DUPLICATE: "INFO",
    Outcome.CANCELLED: "INFO",
    Outcome.DEAD: "ERROR",
    Outcome.RETRY: "WARNING",
}

H_TASK_NAME = "X-CloudTasks-TaskName"
H_QUEUE_NAME = "X-CloudTasks-QueueName"
H_RETRY_COUNT = "X-CloudTasks-TaskRetryCount"
H_TRACE = "X-Cloud-Trace-Context"
MAX_BODY = 1024 * 1024 + 1024
MAX_COUNT = 2**31 - 1


def _int_header(headers: Any, name: str) -> int:
    # Cloud Tasks' counts are int32; a larger value is garbage, and it would overflow the
    # store's integer columns (a 500 instead of a failed-task record).
    try:
        return min(max(0, int(headers.get(name, "0"))), MAX_COUNT)
    except (TypeError, ValueError):
        return 0


def read_delivery(request: flask.Request, body: bytes | None = None) -> Delivery:
    """A ``Delivery`` from the headers and ``body`` (read here, bounded, when not given);
    malformed headers read as absent (never a 500)."""
    headers = request.headers
    if body is None:
        body = take_body(request, MAX_BODY) or b""
    return Delivery(
        body=body,
        task_name=headers.get(H_TASK_NAME, "")[:500],
        queue_name=headers.get(H_QUEUE_NAME, "")[:100],
        retry_count=_int_header(headers, H_RETRY_COUNT),
    )


def _json(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> flask.Response:
    return flask.Response(json.dumps(payload), status=status, mimetype="application/json", headers=headers)


def respond(result: Result) -> flask.Response:
    """The HTTP answer for an outcome (the table in the module docstring)."""
    headers = {}
    if result.outcome is Outcome.RETRY and result.retry_after is not None:
        headers["Retry-After"] = str(max(1, int(round(result.retry_after))))
    body = {"outcome": result.outcome.value, "kind": result.kind, "order_id": result.order_id,
            "message": result.message}
    return _json(STATUS[result.outcome], body, headers)


class TaskHandler:
    """The WSGI-level handler: auth, delivery, dispatch, status, one log line."""

    def __init__(self, dispatcher: Dispatcher, verifier: TokenVerifier | None, project: str,
                 tracing: Tracing = NO_TRACING) -> None:
        """``tracing``: one span per delivery attempt (``handlers.tracing``), the dispatch's spans inside."""
        self.dispatcher = dispatcher
        self.tracing = tracing
        self.verifier = verifier
        self.project = project

    def __call__(self, request: flask.Request) -> flask.Response:
        """Handle one Cloud Tasks delivery."""
        started = time.perf_counter()
        if request.method != "POST":
            discard_body(request)
            return _json(405, {"error": "Cloud Tasks deliveries are POST requests"}, {"Allow": "POST"})
        trace = trace_field(request.headers.get(H_TRACE), self.project)
        # Headers first: nobody unauthenticated gets to make us read (or buffer) a body.
        refusal = self._authenticate(request, trace)
        if refusal is not None:
            discard_body(request)
            return refusal
        body = take_body(request, MAX_BODY)
        if body is None:
            log_line("WARNING", f"refused a body over {MAX_BODY} bytes", {TRACE_KEY: trace}, status=413,
                     task_name=request.headers.get(H_TASK_NAME, "")[:500])
            return _json(413, {"error": f"the body is over {MAX_BODY} bytes; a Cloud Tasks task is at most 1 MiB"})
        delivery = read_delivery(request, body)
        with self.tracing.incoming("deliver", request.headers, "consumer", queue=delivery.queue_name or None,
                                   task_name=delivery.task_name or None, attempt=delivery.attempt) as span:
            result = self.dispatcher.run(delivery)
            if self.tracing.enabled:
                describe_delivery(span, result)
            self._log_result(delivery, result, span.log_fields(self.project) or {TRACE_KEY: trace},
                             time.perf_counter() - started)
        return respond(result)

    def _authenticate(self, request: flask.Request, trace: str | None) -> flask.Response | None:
        """``None`` when the caller may deliver; else the 401/403 (bad token) or 503 (certs down)."""
        if self.verifier is None:
            return None
        task_name = request.headers.get(H_TASK_NAME, "")[:500]
        try:
            self.verifier.verify(request.headers.get("Authorization"))
        except AuthError as exc:
            log_line("WARNING", f"rejected delivery: {exc}", {TRACE_KEY: trace}, task_name=task_name,
                     status=exc.status)
            return _json(exc.status, {"error": str(exc)})
        except DependencyUnavailable as exc:
            # Not the caller's fault: 503 so Cloud Tasks retries; the detail stays in the log.
            retry_after = str(max(1, int(exc.retry_after or 30)))
            log_line("WARNING", f"cannot verify delivery: {exc}", {TRACE_KEY: trace}, task_name=task_name,
                     status=503)
            return _json(503, {"error": "the token cannot be verified right now (signing certificates "
                                        "unavailable); retry later"}, {"Retry-After": retry_after})
        return None

    def _log_result(self, delivery: Delivery, result: Result, trace: dict[str, Any], seconds: float) -> None:
        log_line(SEVERITY[result.outcome], f"{result.kind} {result.outcome.value}: {result.message}",
                 trace, task_name=delivery.task_name, queue=delivery.queue_name, kind=result.kind,
                 order_id=result.order_id, attempt=delivery.attempt, outcome=result.outcome.value,
                 status=STATUS[result.outcome], error_type=result.error_type,
                 duration_ms=round(seconds * 1000, 2))


def describe_delivery(span: Span, result: Result) -> None:
    """Name the delivery's span after its kind and record what became of it (an error status
    for ``RETRY`` and ``DEAD``)."""
    span.rename(f"deliver {result.kind}" if result.kind else "deliver")
    span.set(kind=result.kind, order_id=result.order_id, outcome=result.outcome.value,
             http__response__status_code=STATUS[result.outcome])
    if result.outcome in (Outcome.RETRY, Outcome.DEAD):
        span.failed(result.message, result.error_type)


def build_handler(settings: Settings, **parts: Any) -> TaskHandler:
    """The callable functions-framework serves; ``parts`` go to ``wiring.build_dispatcher``
    (``tracing`` among them; default ``tracing_for(settings)``)."""
    require_cloud_ready(settings, "handler")
    tracing = parts.pop("tracing", None) or tracing_for(settings, "ordertasks-handler")
    dispatcher = wiring.build_dispatcher(settings, tracing=tracing, **parts)
    catalog = dispatcher.catalog
    return TaskHandler(dispatcher, wiring.build_verifier(settings, catalog), catalog.project, tracing)


_handler: Callable[[flask.Request], flask.Response] | None = None
_lock = threading.Lock()
_failure: Exception | None = None   # the last failed build's error, kept for the requests that waited on it
_failed_builds = 0


def _build() -> Callable[[flask.Request], flask.Response]:
    """The handler, built once under the lock. A failure is raised, never cached: the next
    request builds again, and only the requests that waited on the failed build share its error."""
    global _handler, _failure, _failed_builds
    seen = _failed_builds
    with _lock:
        if _handler is not None:
            return _handler
        if _failed_builds != seen and _failure is not None:
            # A build failed while this request waited for the lock: answer with its error
            # rather than queue one more (a locked store costs busy_timeout per try).
            raise _failure.with_traceback(None)
        try:
            _handler = build_handler(Settings.from_env())
        except Exception as exc:
            _failure, _failed_builds = exc, _failed_builds + 1
            raise
        _failure = None
        return _handler


def startup_failure(exc: Exception) -> flask.Response:
    """The 503 (always with ``Retry-After``) for a handler that could not build itself
    (``handlers.startup``)."""
    return _json(*failed_start("handler", exc))


def handle_task(request: flask.Request) -> flask.Response:
    """functions-framework target: ``--entry-point=handle_task``.

    A handler that cannot build itself answers 503 with ``Retry-After`` (Cloud Tasks keeps the
    task) and logs what to fix; it never runs half-configured, and ``ordertasks handler``
    refuses to start at all on a bad setting.
    """
    try:
        handler = _handler or _build()
    except Exception as exc:  # noqa: BLE001 - a start-up failure answers 503, never a 500 with a traceback
        discard_body(request)
        return startup_failure(exc)
    return handler(request)
