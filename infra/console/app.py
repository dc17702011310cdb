"""The console's pages (Flask + Jinja, server-rendered, no JavaScript needed).

Every action is two steps: a GET that shows what will happen and asks for confirmation, then
a POST (with the CSRF token) that does it and redirects back with a message. Text from the
stores and from Cloud Tasks (payloads, errors, names, notes) reaches the page only through
Jinja's autoescaping.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask import Flask, abort, flash, redirect, render_template, request, url_for
from google.api_core import exceptions as gexc
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from ordertasks.handlers.errors import DependencyUnavailable
from ordertasks.producer.backend_flags import CREDENTIALS_HINT, is_missing_credentials
from ordertasks.infra.console import failed as failed_page
from ordertasks.infra.console import overview, queues, timeline, trace_view
from ordertasks.infra.console.cancel import cancel_pending_tasks, cancel_summary
from ordertasks.infra.console.context import Console
from ordertasks.infra.console.security import protect
from ordertasks.handlers.ports import FAILED_STATUSES, FailedStatus
from ordertasks.producer.failure_groups import group_failures
from ordertasks.producer.triage import REPLAYABLE, TriageError, age

log = logging.getLogger("ordertasks.console")


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else "-"


def _from_now(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    return f"in {age(now, moment)}" if moment > now else f"{age(moment, now)} ago"


def create_app(console: Console | None, host: str = "127.0.0.1", problem: str | None = None,
               label: str | None = None, allowed_hosts: Iterable[str] = (), traces_url: str | None = None) -> Flask:
    """The console app over ``console``; with ``console=None`` every page explains ``problem``
    (e.g. missing credentials) instead, under the header ``label``. It answers only requests
    whose ``Host`` is loopback, ``host`` or one of ``allowed_hosts`` (``infra.console.security``).
    ``traces_url``: the dev stack's trace receiver, for each order's waterfall (``trace_view``)."""
    app = Flask(__name__)
    protect(app, host, allowed_hosts)
    app.jinja_env.filters["when"] = _when
    app.jinja_env.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True, default=str)
    app.jinja_env.globals.update(backend_label=console.where if console else (label or "not connected"),
                                 replayable=REPLAYABLE)
    _errors(app)
    if console is None:
        _unavailable(app, problem or CREDENTIALS_HINT)
        return app
    app.jinja_env.filters["ago"] = lambda moment: age(moment, console.clock.now()) + " ago" if moment else "-"
    app.jinja_env.filters["from_now"] = lambda moment: _from_now(moment, console.clock.now())
    app.jinja_env.globals["kinds"] = list(console.catalog.kinds)
    app.add_url_rule("/healthz", "healthz", lambda: {"status": "ok"})
    _overview_routes(app, console)
    _queue_routes(app, console)
    _order_routes(app, console)
    trace_view.register(app, traces_url)
    _failed_routes(app, console)
    return app


def _unavailable(app: Flask, problem: str) -> None:
    def explain(path: str = "") -> tuple[str, int]:
        return render_template("unavailable.html", problem=problem), 503
    app.add_url_rule("/", "index", explain)
    app.add_url_rule("/<path:path>", "anything", explain, methods=["GET", "POST"])


def _errors(app: Flask) -> None:
    def page(status: int, title: str, message: str) -> tuple[str, int]:
        return render_template("error.html", status=status, title=title, message=message), status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[str, int]:
        return page(exc.code or 500, exc.name, exc.description or "")

    @app.errorhandler(DependencyUnavailable)
    def store_down(exc: DependencyUnavailable) -> tuple[str, int]:
        return page(503, "Store unavailable", str(exc))

    @app.errorhandler(gexc.PermissionDenied)
    def denied(exc: gexc.PermissionDenied) -> tuple[str, int]:
        return page(403, "Permission denied", f"{exc.message}. The roles an operator needs are listed in "
                    "docs/operations.md")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[str, int]:
        if is_missing_credentials(exc):
            return render_template("unavailable.html", problem=CREDENTIALS_HINT), 503
        log.exception("console page failed")
        return page(500, "Something went wrong", f"{type(exc).__name__}: {str(exc)[:300]}. "
                    "Details are in the console's log")


# --- overview -------------------------------------------------------------------------


def _overview_routes(app: Flask, console: Console) -> None:
    app.jinja_env.filters["duration"] = overview.duration_text
    live = {"chart": overview.minute_chart, "refresh": overview.LIVE_REFRESH_SECONDS}
    closed = overview.ClosedMinutes()         # minutes that can no longer change, read once

    @app.get("/")
    def index() -> str:
        now = console.clock.now()
        rows = [overview.kind_counts(console, kind) for kind in console.catalog.kinds]
        series = overview.failures_per_hour(console, now)
        return render_template("overview.html", rows=rows, outcomes=overview.OUTCOMES,
                               failed_chart=overview.bar_chart(series), total_failed=sum(n for _, n in series),
                               queues=queues.queue_views(console, now), now=now,
                               live=overview.live_overview(console, now, closed), **live)

    @app.get("/overview/live")
    def overview_live() -> str:
        """The live part alone: what ``static/live.js`` swaps in every few seconds."""
        view = overview.live_overview(console, console.clock.now(), closed)
        return render_template("overview_live.html", live=view, **live)


# --- queues -----------------------------------------------------------------------------


def _catalog_queue_or_404(console: Console, name: str) -> None:
    if name not in console.catalog.queues:
        abort(404, description=f"no queue {name!r} in the catalog")


def _queue_or_404(console: Console, name: str, action: str) -> None:
    _catalog_queue_or_404(console, name)
    if action not in queues.ACTIONS:
        abort(404, description=f"queues can be {', '.join(queues.ACTIONS)}d, not {action!r}")


def _queue_routes(app: Flask, console: Console) -> None:
    @app.get("/queues")
    def queue_list() -> str:
        now = console.clock.now()
        return render_template("queues.html", queues=queues.queue_views(console, now), now=now)

    @app.get("/queues/<name>/<action>")
    def queue_confirm(name: str, action: str) -> str:
        _queue_or_404(console, name, action)
        view = queues.queue_view(console, name, console.clock.now())
        return render_template("queue_confirm.html", queue=view, action=action)

    @app.post("/queues/<name>/<action>")
    def queue_act(name: str, action: str) -> Response:
        _queue_or_404(console, name, action)
        if action == "purge" and request.form.get("confirm_name") != name:
            flash(f"not purged: type the queue's name ({name}) to confirm", "error")
            return redirect(url_for("queue_confirm", name=name, action=action))
        try:
            flash(queues.apply_action(console, name, action), "ok")
        except gexc.GoogleAPICallError as exc:
            flash(f"{name}: {action} failed: {exc.message}", "error")
        return redirect(url_for("queue_list"))

    _queue_task_routes(app, console)


def _task_or_404(console: Console, name: str, task_id: str, action: str | None = None) -> Any:
    _catalog_queue_or_404(console, name)
    if action is not None and action not in queues.TASK_ACTIONS:
        abort(404, description=f"a task can be run or deleted, not {action!r}")
    task = queues.get_task(console, name, task_id, console.clock.now())
    if task is None:
        abort(404, description=f"no task {task_id!r} in {name}: it ran, was deleted, or never existed; "
                               f"the queue's page lists the tasks it holds")
    return task


def _queue_task_routes(app: Flask, console: Console) -> None:
    @app.get("/queues/<name>/tasks")
    def queue_tasks(name: str) -> str:
        _catalog_queue_or_404(console, name)
        now, token = console.clock.now(), request.args.get("page") or ""
        try:
            tasks, next_token = queues.task_page(console, name, token, now)
        except gexc.InvalidArgument as exc:
            abort(400, description=f"{exc.message}; start again from the queue's first page")
        return render_template("queue_tasks.html", queue=queues.queue_view(console, name, now), tasks=tasks,
                               next_token=next_token, first_page=not token, page_size=queues.TASK_PAGE_SIZE)

    @app.get("/queues/<name>/tasks/<task_id>")
    def queue_task(name: str, task_id: str) -> str:
        return render_template("queue_task.html", queue_name=name, task=_task_or_404(console, name, task_id))

    @app.get("/queues/<name>/tasks/<task_id>/<action>")
    def queue_task_confirm(name: str, task_id: str, action: str) -> str:
        task = _task_or_404(console, name, task_id, action)
        return render_template("queue_task_confirm.html", queue_name=name, task=task, action=action)

    @app.post("/queues/<name>/tasks/<task_id>/<action>")
    def queue_task_act(name: str, task_id: str, action: str) -> Response:
        _task_or_404(console, name, task_id, action)
        try:
            flash(queues.apply_task_action(console, name, task_id, action), "ok")
        except gexc.GoogleAPICallError as exc:
            flash(f"{task_id}: {action} failed: {exc.message}", "error")
        return redirect(url_for("queue_tasks", name=name))


# --- orders -----------------------------------------------------------------------------


def _search(console: Console, query: str) -> list[Any]:
    if "@" in query:
        found = console.orders.orders_by_email(query)
        return found or (console.orders.orders_by_email(query.lower()) if query.lower() != query else [])
    order = console.orders.get_order(query)
    return [order] if order else []


def _order_routes(app: Flask, console: Console) -> None:
    app.jinja_env.filters["duration"] = overview.duration_text
    app.jinja_env.globals["attempt_words"] = timeline.ATTEMPT_WORDS

    @app.get("/orders")
    def orders() -> str | Response:
        query = (request.args.get("q") or "").strip()
        if not query:
            return render_template("orders.html", query="", orders=console.orders.recent_orders(20), searched=False)
        found = _search(console, query)
        if len(found) == 1 and "@" not in query:
            return redirect(url_for("order", order_id=found[0].order_id))
        return render_template("orders.html", query=query, orders=found, searched=True)

    @app.get("/orders/<order_id>")
    def order(order_id: str) -> str:
        return render_template("order.html", t=_timeline_or_404(console, order_id))

    @app.get("/orders/<order_id>/cancel")
    def order_cancel_confirm(order_id: str) -> str:
        return render_template("order_cancel.html", t=_timeline_or_404(console, order_id))

    @app.post("/orders/<order_id>/cancel")
    def order_cancel(order_id: str) -> Response:
        if console.orders.get_order(order_id) is None:
            abort(404, description=f"no order {order_id!r}")
        results = cancel_pending_tasks(console.tasks, console.orders, console.effects, console.catalog, console.clock,
                                       order_id)
        for line, category in cancel_summary(results):
            flash(line, category)
        return redirect(url_for("order", order_id=order_id))



def _timeline_or_404(console: Console, order_id: str) -> timeline.Timeline:
    """The order's timeline; 404 (saying where to look) for an unknown order."""
    view = timeline.timeline(console, order_id)
    if view is None:
        abort(404, description=f"no order {order_id!r}; search by order id or customer email on the Orders page")
    return view


# --- failed tasks -----------------------------------------------------------------------


def _filter_or_400(console: Console) -> Any:
    try:
        return failed_page.parse_filter(request.args if request.method == "GET" else request.form,
                                        list(console.catalog.kinds))
    except failed_page.BadFilter as exc:
        abort(400, description=str(exc))


def _entry_or_404(console: Console, failed_id: str) -> Any:
    entry = console.failed.get_failed(failed_id)
    if entry is None:
        abort(404, description=f"no failed task {failed_id!r}; ids look like ORDER_ID:KIND")
    return entry


def _failed_routes(app: Flask, console: Console) -> None:
    @app.get("/failed")
    def failed_list() -> str:
        where = _filter_or_400(console)
        cursor = request.args.get("cursor") or None
        try:
            page = console.failed.page_failed(where, limit=failed_page.PAGE_SIZE, cursor=cursor)
        except ValueError as exc:
            abort(400, description=str(exc))
        return render_template("failed_list.html", where=where, page=page, total=console.failed.count_failed(where),
                               args=failed_page.filter_args(where), first_page=cursor is None,
                               next_link=failed_page.query_string(where, cursor=page.cursor or "") if page.cursor else None,
                               bulk_link=failed_page.query_string(where),
                               error_types=failed_page.error_type_choices(console.failed, where))

    @app.get("/failed/groups")
    def failed_groups() -> str:
        where = _filter_or_400(console)
        return render_template("failed_groups.html", where=where, grouping=group_failures(console.failed, where),
                               args=failed_page.filter_args(where))

    @app.get("/failed/<failed_id>")
    def failed_detail(failed_id: str) -> str:
        entry = _entry_or_404(console, failed_id)
        effect = console.effects.get_effect(entry.order_id, entry.kind)
        return render_template("failed_detail.html", e=entry, effect=effect)

    _failed_action_routes(app, console)
    _bulk_routes(app, console)


def _failed_action_routes(app: Flask, console: Console) -> None:
    @app.get("/failed/<failed_id>/replay")
    def failed_replay_confirm(failed_id: str) -> str:
        return render_template("failed_replay.html", e=_entry_or_404(console, failed_id))

    @app.post("/failed/<failed_id>/replay")
    def failed_replay(failed_id: str) -> Response:
        _entry_or_404(console, failed_id)
        try:
            result = console.triage.replay(failed_id, force=request.form.get("force") == "yes")
        except TriageError as exc:
            flash(f"not replayed: {exc}", "error")
        else:
            detail = f" ({result.error})" if result.error else ""
            flash(f"replay {result.status}: {result.task_name}{detail}", "error" if result.error else "ok")
        return redirect(url_for("failed_detail", failed_id=failed_id))

    @app.get("/failed/<failed_id>/resolve")
    def failed_resolve_confirm(failed_id: str) -> str:
        return render_template("failed_resolve.html", e=_entry_or_404(console, failed_id))

    @app.post("/failed/<failed_id>/resolve")
    def failed_resolve(failed_id: str) -> Response:
        _entry_or_404(console, failed_id)
        note = (request.form.get("note") or "").strip()
        if not note:
            flash("not resolved: write a note saying what was done (it is kept with the entry)", "error")
            return redirect(url_for("failed_resolve_confirm", failed_id=failed_id))
        who = (request.form.get("by") or "console").strip()[:100]
        console.triage.resolve(failed_id, note[:2000], who)
        flash(f"{failed_id} resolved by {who}", "ok")
        return redirect(url_for("failed_detail", failed_id=failed_id))


def _bulk_routes(app: Flask, console: Console) -> None:
    @app.get("/failed/bulk-replay")
    def bulk_confirm() -> str:
        where = _filter_or_400(console)
        if request.args.getlist("id"):
            return _selection_page(where, "replay", failed_page.selected(console.failed, request.args.getlist("id"),
                                                                         REPLAYABLE))
        if "group_type" in request.args:
            return _group_page(console, where)
        target = failed_page.bulk_filter(where)
        entries, total = failed_page.bulk_selection(console.failed, target) if target else ([], 0)
        return render_template("failed_bulk.html", where=where, target=target, entries=entries, total=total,
                               args=failed_page.filter_args(where), limit=failed_page.BULK_LIMIT)

    @app.post("/failed/bulk-replay")
    def bulk_replay() -> Response:
        ids = request.form.getlist("id")[: failed_page.BULK_LIMIT]
        if not ids:
            flash("nothing replayed: no tasks were selected", "error")
            return redirect(url_for("failed_list"))
        done = 0
        for failed_id in ids:
            try:
                result = console.triage.replay(failed_id)
            except TriageError as exc:
                flash(f"{failed_id}: not replayed: {exc}", "error")
                continue
            done += result.status != "failed"
            if result.error:
                flash(f"{failed_id}: replay failed: {result.error}", "error")
        flash(f"bulk replay: {done} of {len(ids)} replayed", "ok" if done == len(ids) else "error")
        return redirect(url_for("failed_list", **failed_page.filter_args(_filter_or_400(console))))

    _bulk_resolve_routes(app, console)


def _selection_page(where: Any, action: str, selection: failed_page.Selection, group: Any = None) -> str:
    """The confirm page of a replay or resolve of chosen entries (ticked, or one group)."""
    return render_template("failed_selected.html", action=action, selection=selection, group=group,
                           args=failed_page.filter_args(where), limit=failed_page.BULK_LIMIT)


def _group_page(console: Console, where: Any) -> str:
    error_type, message = request.args.get("group_type", ""), request.args.get("group_message", "")
    selection = failed_page.group_selection(console.failed, where, error_type, message)
    if selection is None:
        abort(404, description=f"no open {error_type!r} failures read {message[:200]!r} any more; "
                               "the Failed tasks page lists the groups there are now")
    return _selection_page(where, "replay", selection, group=(error_type, message))


def _bulk_resolve_routes(app: Flask, console: Console) -> None:
    @app.get("/failed/bulk-resolve")
    def bulk_resolve_confirm() -> str:
        wanted = set(FAILED_STATUSES) - {FailedStatus.RESOLVED}
        return _selection_page(_filter_or_400(console), "resolve",
                               failed_page.selected(console.failed, request.args.getlist("id"), wanted))

    @app.post("/failed/bulk-resolve")
    def bulk_resolve() -> Response:
        ids, note = request.form.getlist("id")[: failed_page.BULK_LIMIT], (request.form.get("note") or "").strip()
        if not ids or not note:
            flash("nothing resolved: " + ("no tasks were selected" if not ids else
                                          "write a note saying what was done (it is kept with each entry)"), "error")
            return redirect(url_for("bulk_resolve_confirm", id=ids) if ids else url_for("failed_list"))
        who = (request.form.get("by") or "console").strip()[:100]
        done = 0
        for failed_id in ids:
            try:
                console.triage.resolve(failed_id, note[:2000], who)
                done += 1
            except TriageError as exc:
                flash(f"{failed_id}: not resolved: {exc}", "error")
        flash(f"bulk resolve: {done} of {len(ids)} resolved by {who}", "ok" if done == len(ids) else "error")
        return redirect(url_for("failed_list", **failed_page.filter_args(_filter_or_400(console))))
