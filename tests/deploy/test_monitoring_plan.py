"""The monitoring section of ``deploy plan``: every metric file is deployed, and the auditor
(reconcile in the maintenance function) has its metric, its alert policy and a dashboard tile."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from ordertasks.infra.config import REPO_ROOT
from ordertasks.infra.deploy import main
from ordertasks.infra.deploy._monitoring import METRICS, monitoring_file
from tests.deploy.conftest import COMPLETE, PROJECT, REGION, target

AUDITOR_METRIC, AUDITOR_POLICY = "ordertasks_auditor_actions", "ordertasks: auditor acted"


def monitoring_commands() -> list[list[str]]:
    """The monitoring section's planned commands, split as a shell would."""
    lines: list[str] = []
    status = main(["plan", "--project", PROJECT, "--region", REGION, "--config", str(COMPLETE),
                   "--only", "monitoring"], out=lines.append)
    assert status == 0, lines
    return [shlex.split(line.split(". ", 1)[1]) for line in lines if line.lstrip()[:1].isdigit()]


def created_policies() -> dict[str, dict[str, Any]]:
    """The alert policies the plan creates, by display name."""
    flags = [arg for command in monitoring_commands() if command[1:5] == ["alpha", "monitoring", "policies", "create"]
             for arg in command if arg.startswith("--policy=")]
    policies = [json.loads(flag.removeprefix("--policy=")) for flag in flags]
    return {p["displayName"]: p for p in policies}


def test_every_metric_file_is_registered_under_its_own_name() -> None:
    files = {p.name for p in (REPO_ROOT / "infra" / "monitoring").glob("metric-*.json")}
    assert files == set(METRICS.values())
    assert all(monitoring_file(filename)["name"] == name for name, filename in METRICS.items())


def test_the_plan_creates_the_auditor_metric_from_its_file() -> None:
    create = ["gcloud", "logging", "metrics", "create", AUDITOR_METRIC,
              "--config-from-file=.ordertasks/deploy/monitoring/metric-auditor-actions.json", f"--project={PROJECT}"]
    assert create in monitoring_commands()
    # The plan names the staged copy of the package's file (the working directory is the test's own).
    staged = Path(".ordertasks/deploy/monitoring/metric-auditor-actions.json")
    assert json.loads(staged.read_text(encoding="utf-8")) == monitoring_file(METRICS[AUDITOR_METRIC])


def test_the_auditor_metric_counts_audit_lines_by_action_and_kind() -> None:
    metric = monitoring_file(METRICS[AUDITOR_METRIC])
    assert "jsonPayload.audit_action:*" in metric["filter"]
    # The maintenance function is a gen2 function: its stdout is a Cloud Run revision's log.
    assert 'resource.type="cloud_run_revision"' in metric["filter"]
    assert metric["labelExtractors"] == {"action": "EXTRACT(jsonPayload.audit_action)",
                                         "kind": "EXTRACT(jsonPayload.kind)"}
    descriptor = metric["metricDescriptor"]
    assert (descriptor["metricKind"], descriptor["valueType"]) == ("DELTA", "INT64")
    assert sorted(label["key"] for label in descriptor["labels"]) == ["action", "kind"]


def test_the_handlers_metrics_need_an_outcome_which_audit_lines_lack() -> None:
    # An audit line has task_name and kind but no outcome: were that to change, every
    # auditor action would also count as an answered delivery.
    for name in ("ordertasks_task_outcomes", "ordertasks_failed_tasks"):
        assert "jsonPayload.outcome" in monitoring_file(METRICS[name])["filter"], name


def test_the_auditor_policy_fires_on_any_action_and_notifies_the_channel() -> None:
    policy = created_policies()[AUDITOR_POLICY]
    threshold = policy["conditions"][0]["conditionThreshold"]
    assert f'metric.type="logging.googleapis.com/user/{AUDITOR_METRIC}"' in threshold["filter"]
    assert (threshold["comparison"], threshold["thresholdValue"]) == ("COMPARISON_GT", 0)
    assert threshold["aggregations"] == [{"alignmentPeriod": "300s", "perSeriesAligner": "ALIGN_DELTA",
                                          "crossSeriesReducer": "REDUCE_SUM", "groupByFields": ["metric.label.action"]}]
    assert policy["notificationChannels"] == [target().cloud.notification_channel]


def test_the_auditor_policy_tells_the_operator_what_to_do() -> None:
    text = created_policies()[AUDITOR_POLICY]["documentation"]["content"]
    assert "TaskVanished" in text and "ordertasks failed list" in text
    assert "recreated" in text and "failed" in text


def test_the_dashboard_charts_every_metric() -> None:
    filters = [data_set["timeSeriesQuery"]["timeSeriesFilter"]["filter"]
               for tile in monitoring_file("dashboard.json")["mosaicLayout"]["tiles"]
               for data_set in tile["widget"]["xyChart"]["dataSets"]]
    for name in METRICS:
        assert any(f'"logging.googleapis.com/user/{name}"' in f for f in filters), name
