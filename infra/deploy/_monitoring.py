"""Monitoring as code: log-based metrics, alert policies and a dashboard.

The metrics (``infra/monitoring/metric-*.json``, package data of ``ordertasks.infra``, staged
beside the function source so the commands name a file that exists wherever deploy runs) count structured log lines: the handler's
(every answered delivery by kind, outcome and queue; every task written to the failed-task
log) and the auditor's in the maintenance function (every owed side effect whose task had
vanished, by action and kind). Four alert policies notify the catalog's channel:

- **failed task**: any task written to the failed-task log (it needs a person);
- **retry rate**: more than ``retry_rate_threshold`` of deliveries answered "retry" over 10 min;
- **oldest task**: a queue dispatching tasks more than ``oldest_task_minutes`` after their
  schedule. Cloud Tasks exports no oldest-task-age metric (only queue depth, attempt counts
  and attempt delays), so this uses ``queue/task_attempt_delays``, p99: how long the tasks
  being dispatched waited past the time they were due;
- **auditor acted**: the auditor re-created a vanished task or gave up on one. Cloud Tasks
  deletes a task after its last attempt whatever the handler answered, so this is the only
  trace of tasks the handler never answered (down, crash-looping, failing past the retry span).

Alert policies and dashboards get ids from the server, so they are found by display name.
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Sequence
from typing import Any

from ordertasks.infra.deploy._model import Command, Resource, lookup
from ordertasks.infra.deploy._target import Target

METRICS = {"ordertasks_task_outcomes": "metric-task-outcomes.json", "ordertasks_failed_tasks": "metric-failed-tasks.json",
           "ordertasks_auditor_actions": "metric-auditor-actions.json"}
DASHBOARD = "dashboard.json"
USER_METRIC = "logging.googleapis.com/user/"
ALPHA = ("alpha", "monitoring", "policies")  # alert policies are not in gcloud's GA surface yet


def monitoring_text(name: str) -> str:
    """The text of a monitoring definition (``infra/monitoring/NAME``, installed as package data)."""
    return (importlib.resources.files("ordertasks.infra") / "monitoring" / name).read_text(encoding="utf-8")


def monitoring_file(name: str) -> Any:
    """The JSON of a monitoring definition."""
    return json.loads(monitoring_text(name))


def compact(value: Any) -> str:
    """Compact JSON, the form inline ``--policy`` flags take."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _metric(t: Target, name: str, filename: str) -> Resource:
    project, path = f"--project={t.project}", f"--config-from-file={t.monitoring_dir}/{filename}"
    want = monitoring_file(filename)

    def diff(document: Any) -> list[str]:
        label_keys = [label.get("key") for label in lookup(document, "metricDescriptor.labels") or []]
        checks = {"filter": document.get("filter") == want["filter"],
                  "labelExtractors": document.get("labelExtractors") == want["labelExtractors"],
                  "labels": sorted(label_keys) == sorted(lab["key"] for lab in want["metricDescriptor"]["labels"])}
        return [key for key, ok in checks.items() if not ok]
    return Resource("monitoring", f"log-based metric {name}",
                    ("logging", "metrics", "create", name, path, project),
                    ("logging", "metrics", "describe", name, "--format=json", project), diff,
                    lambda _: ("logging", "metrics", "update", name, path, project),
                    ("logging", "metrics", "delete", name, "--quiet", project))


def _threshold(name: str, filter_: str, aggregation: dict[str, Any], value: float, duration: str,
               **extra: Any) -> dict[str, Any]:
    return {"displayName": name, "conditionThreshold": {
        "filter": filter_, "aggregations": [aggregation], "comparison": "COMPARISON_GT",
        "thresholdValue": value, "duration": duration, "trigger": {"count": 1}, **extra}}


def _sum(period: str, group: Sequence[str] = ()) -> dict[str, Any]:
    return {"alignmentPeriod": period, "perSeriesAligner": "ALIGN_DELTA", "crossSeriesReducer": "REDUCE_SUM",
            "groupByFields": list(group)}


def user_metric(name: str) -> str:
    """Monitoring filter for one of our log-based metrics (they count Cloud Run revision logs)."""
    return f'metric.type="{USER_METRIC}{name}" AND resource.type="cloud_run_revision"'


AUDITOR_DOC = ("Cloud Tasks dropped tasks the handler never answered with success: it was down, crash-looping or "
               "failing past the queue's retry span (see the handler's log). `recreated`: the auditor enqueued them "
               "again; `failed`: it gave up and wrote them to the failed-task log with error type `TaskVanished`. "
               "Triage: `ordertasks failed list --status open` (or the console), then replay or resolve.")


def _auditor_acted() -> dict[str, Any]:
    # By action: "failed" needs a person, "recreated" only says the handler lost tasks; 300s
    # spans one reconcile run (every 5 min by default) so a run's actions open one incident.
    return _threshold("the auditor re-created or gave up on vanished tasks", user_metric("ordertasks_auditor_actions"),
                      _sum("300s", ["metric.label.action"]), 0, "0s")


def alert_policies(t: Target) -> list[dict[str, Any]]:
    """The four alert policies, as the Monitoring API takes them."""
    outcomes, failed = user_metric("ordertasks_task_outcomes"), user_metric("ordertasks_failed_tasks")
    delays = 'metric.type="cloudtasks.googleapis.com/queue/task_attempt_delays" AND resource.type="cloud_tasks_queue"'
    minutes, rate = t.cloud.oldest_task_minutes, t.cloud.retry_rate_threshold
    conditions = {
        "ordertasks: failed task": (_threshold("a task was written to the failed-task log", failed,
                                               _sum("60s", ["metric.label.kind"]), 0, "0s"),
                                    "A task will not be retried. Triage: `ordertasks failed list`, then replay or resolve."),
        "ordertasks: retry rate": (_threshold(f"more than {rate:.0%} of deliveries retried", outcomes + ' AND metric.label.outcome="retry"',
                                              _sum("600s"), rate, "600s", denominatorFilter=outcomes,
                                              denominatorAggregations=[_sum("600s")]),
                                   "A dependency (SMTP relay, warehouse, store) is failing or slow: see the handler's log."),
        "ordertasks: oldest task": (_threshold(f"tasks dispatched over {minutes} min late", delays,
                                               {"alignmentPeriod": "300s", "perSeriesAligner": "ALIGN_PERCENTILE_99",
                                                "crossSeriesReducer": "REDUCE_MAX", "groupByFields": ["resource.label.queue_id"]},
                                               minutes * 60_000, "300s"),
                                    "A queue is behind: paused, rate-limited, or its handler keeps failing. `gcloud tasks queues describe`."),
        "ordertasks: auditor acted": (_auditor_acted(), AUDITOR_DOC),
    }
    channels = [t.cloud.notification_channel] if t.cloud.notification_channel else []
    return [{"displayName": name, "combiner": "OR", "conditions": [condition], "notificationChannels": channels,
             "documentation": {"content": doc, "mimeType": "text/markdown"}, "userLabels": {"managed-by": "ordertasks"}}
            for name, (condition, doc) in conditions.items()]


def _found(document: Any) -> Any:
    return (document or [None])[0]


def _policy_diff(want: dict[str, Any]) -> Any:
    def diff(document: Any) -> list[str]:
        current = _found(document) or {}
        keys = ("combiner", "notificationChannels", "documentation", "userLabels")
        differing = [key for key in keys if current.get(key) != want[key]]
        conditions = [{k: c.get(k) for k in ("displayName", "conditionThreshold")} for c in current.get("conditions", [])]
        return differing + ([] if conditions == want["conditions"] else ["conditions"])
    return diff


def _policy(t: Target, policy: dict[str, Any]) -> Resource:
    project, inline = f"--project={t.project}", f"--policy={compact(policy)}"

    def update(document: Any, _: Sequence[str]) -> Command:
        return (*ALPHA, "update", _found(document)["name"], inline, project)

    def delete(document: Any) -> Command:
        return (*ALPHA, "delete", _found(document)["name"], "--quiet", project)
    return Resource("monitoring", f"alert policy {policy['displayName']!r}",
                    (*ALPHA, "create", inline, project),
                    (*ALPHA, "list", f"--filter=displayName=\"{policy['displayName']}\"", "--format=json", project),
                    _policy_diff(policy), exists=bool, update_found=update, delete_found=delete)


def _dashboard(t: Target) -> Resource:
    project, path = f"--project={t.project}", f"--config-from-file={t.monitoring_dir}/{DASHBOARD}"
    want = monitoring_file(DASHBOARD)

    def diff(document: Any) -> list[str]:
        return [] if (_found(document) or {}).get("mosaicLayout") == want["mosaicLayout"] else ["mosaicLayout"]
    return Resource("monitoring", f"dashboard {want['displayName']!r}",
                    ("monitoring", "dashboards", "create", path, project),
                    ("monitoring", "dashboards", "list", f"--filter=displayName=\"{want['displayName']}\"",
                     "--format=json", project), diff, exists=bool,
                    update_found=lambda d, _: ("monitoring", "dashboards", "update", _found(d)["name"], path, project),
                    delete_found=lambda d: ("monitoring", "dashboards", "delete", _found(d)["name"], "--quiet", project))


def section_monitoring(t: Target) -> list[Resource]:
    """Metrics first (the policies and the dashboard name them), then policies, then the dashboard."""
    return [*(_metric(t, name, filename) for name, filename in METRICS.items()),
            *(_policy(t, policy) for policy in alert_policies(t)), _dashboard(t)]
