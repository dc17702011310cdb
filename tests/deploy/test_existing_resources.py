"""``apply`` on resources that already exist: the real gcloud describes a canned resource
from the recording stand-in; matching ones are left alone, differing ones get only the change."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ordertasks.infra.deploy import SourceOptions, Target, apply, build_plan, stage_source
from ordertasks.infra.deploy._data import composite_indexes
from ordertasks.infra.deploy._jobs import job_body
from ordertasks.infra.deploy._monitoring import monitoring_file
from ordertasks.infra.deploy._services import GUNICORN
from ordertasks.infra.deploy._plan import deployed_env
from tests.deploy.conftest import PROJECT, REGION, recorded_runner, target
from tests.deploy.recorder import Recorder

LOC = f"/projects/{PROJECT}/locations/{REGION}"
BUCKET, DISPATCHER = f"{PROJECT}-invoices", f"ordertasks-dispatcher@{PROJECT}.iam.gserviceaccount.com"
SCHEDULER = f"ordertasks-scheduler@{PROJECT}.iam.gserviceaccount.com"
MAINTENANCE_URL = f"https://{REGION}-{PROJECT}.cloudfunctions.net/ordertasks-maintenance"


def bucket(prevention: str) -> dict[str, Any]:
    return {"kind": "storage#bucket", "name": BUCKET, "location": "EUROPE-WEST1",
            "iamConfiguration": {"uniformBucketLevelAccess": {"enabled": True}, "publicAccessPrevention": prevention}}


def job(schedule: str) -> dict[str, Any]:
    return {"name": f"projects/{PROJECT}/locations/{REGION}/jobs/ordertasks-reconcile", "schedule": schedule,
            "timeZone": "Etc/UTC", "state": "ENABLED",
            "httpTarget": {"uri": f"{MAINTENANCE_URL}/reconcile", "httpMethod": "POST",
                           "body": base64.b64encode(job_body("reconcile").encode()).decode(),
                           "oidcToken": {"serviceAccountEmail": SCHEDULER, "audience": MAINTENANCE_URL}}}


def function(ingress: str) -> Callable[[Target], dict[str, Any]]:
    """A deployed function with our settings but ``ingress``, from the same plan target."""
    return lambda t: _function(ingress, t)


def _function(ingress: str, t: Target) -> dict[str, Any]:
    env = {**deployed_env(t)["handler"], "ORDERTASKS_HAND_SET": "kept"}  # set by hand: must survive
    secrets = [{"key": s.variable, "projectId": PROJECT, "secret": s.secret, "version": s.version}
               for s in t.cloud.secrets_for("handler")]
    return {"name": f"projects/{PROJECT}/locations/{REGION}/functions/ordertasks-handler", "state": "ACTIVE",
            "environment": "GEN_2", "labels": {"ordertasks-source": t.source_digest, "deployment-tool": "cli-gcloud"},
            "buildConfig": {"runtime": "python312", "entryPoint": "handle_task"},
            "serviceConfig": {"ingressSettings": ingress, "serviceAccountEmail": f"ordertasks-handler@{PROJECT}.iam.gserviceaccount.com",
                              "maxInstanceCount": 20, "maxInstanceRequestConcurrency": 8, "availableMemory": "512Mi",
                              "availableCpu": "1", "timeoutSeconds": 300, "environmentVariables": env,
                              "secretEnvironmentVariables": secrets,
                              "service": f"projects/{PROJECT}/locations/{REGION}/services/ordertasks-handler"}}


def checkout_service(t: Target) -> dict[str, Any]:
    """The Knative service Cloud Run describes, holding exactly our settings (plus Cloud Run's own)."""
    env = [{"name": k, "value": v} for k, v in deployed_env(t)["checkout"].items()]
    env += [{"name": s.variable, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": s.version}}}
            for s in t.cloud.secrets_for("checkout")]
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "ordertasks-checkout", "namespace": PROJECT, "labels": {"ordertasks-source": t.source_digest}},
            "spec": {"template": {"metadata": {"annotations": {"autoscaling.knative.dev/maxScale": "20"}},
                                  "spec": {"serviceAccountName": f"ordertasks-checkout@{PROJECT}.iam.gserviceaccount.com",
                                           "containers": [{"image": "x", "command": ["gunicorn"], "args": list(GUNICORN),
                                                           "env": env}]}}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "url": "https://checkout.a.run.app"}}


def metric(filename: str) -> dict[str, Any]:
    return {**monitoring_file(filename), "name": "ordertasks_task_outcomes"}


def index(t: Target) -> dict[str, Any]:
    group, fields = composite_indexes()[0]
    return {"indexes": [{"name": f"projects/{PROJECT}/databases/(default)/collectionGroups/{group}/indexes/CICAgJim14AK",
                         "queryScope": "COLLECTION", "state": "READY",
                         "fields": [{"fieldPath": p, "order": o.upper()} for p, o in fields] + [
                             {"fieldPath": "__name__", "order": "DESCENDING"}]}]}


SA_PATH = f"/v1/projects/-/serviceAccounts/{DISPATCHER}"  # gcloud looks accounts up by email across projects
CASES = {
    "bucket-matches": ("bucket", f"/storage/v1/b/{BUCKET}", bucket("enforced"), "unchanged"),
    "bucket-public": ("bucket", f"/storage/v1/b/{BUCKET}", bucket("inherited"), "updated (publicAccessPrevention)"),
    "job-matches": ("scheduler", f"/v1{LOC}/jobs/ordertasks-reconcile", job("*/5 * * * *"), "unchanged"),
    "job-schedule": ("scheduler", f"/v1{LOC}/jobs/ordertasks-reconcile", job("0 * * * *"), "updated (schedule)"),
    "function-matches": ("function", f"/v2{LOC}/functions/ordertasks-handler", function("ALLOW_INTERNAL_ONLY"), "unchanged"),
    "function-ingress": ("function", f"/v2{LOC}/functions/ordertasks-handler", function("ALLOW_ALL"), "updated (ingressSettings)"),
    "account-matches": ("accounts", SA_PATH, {"email": DISPATCHER, "name": f"projects/{PROJECT}/serviceAccounts/{DISPATCHER}",
                                              "displayName": "ordertasks task dispatcher (OIDC identity of Cloud Tasks)"},
                        "unchanged"),
    "ttl-active": ("ttl", f"/v1/projects/{PROJECT}/databases/(default)/collectionGroups/idempotency/fields/expire_at",
                   {"name": "x", "ttlConfig": {"state": "ACTIVE"}}, "unchanged"),
    "checkout-matches": ("checkout", f"/apis/serving.knative.dev/v1/namespaces/{PROJECT}/services/ordertasks-checkout",
                         checkout_service, "unchanged"),
    "metric-matches": ("monitoring", f"/v2/projects/{PROJECT}/metrics/ordertasks_task_outcomes",
                       metric("metric-task-outcomes.json"), "unchanged"),
    "metric-filter": ("monitoring", f"/v2/projects/{PROJECT}/metrics/ordertasks_task_outcomes",
                      {**metric("metric-task-outcomes.json"), "filter": "severity>=ERROR"}, "updated (filter)"),
    "index-exists": ("indexes", f"/v1/projects/{PROJECT}/databases/(default)/collectionGroups/-/indexes", index, "unchanged"),
    "enqueuer-granted": ("iam", f"/v2{LOC}/queues/ordertasks-email:getIamPolicy",
                         {"bindings": [{"role": "roles/cloudtasks.enqueuer",
                                        "members": [f"serviceAccount:ordertasks-checkout@{PROJECT}.iam.gserviceaccount.com"]}],
                          "etag": "BwY="}, "unchanged"),
}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest, recorder: Recorder, gcloud_env: dict[str, str],
         tmp_path: Path) -> tuple[str, str, Recorder]:
    """Apply the first resource of the case's section against a recorder holding the canned resource."""
    section, path, document, expected = CASES[request.param]
    staged = stage_source(target().catalog, SourceOptions(tmp_path / "deploy"))  # what an update uploads and reads
    # One target: the source digest must not move between plan and canned copy.
    plan_target = target(staging_dir=staged.root, source_digest=staged.digest)
    recorder.canned[path] = document(plan_target) if callable(document) else document
    resource = next(r for r in build_plan(plan_target, [section]) if "ordertasks-reconcile" in r.label
                    or "dispatcher" in r.label or section not in ("scheduler", "accounts"))
    lines: list[str] = []
    apply([resource], recorded_runner(gcloud_env, recorder), lines.append)
    return request.param, lines[0].rsplit(": ", 1)[1], recorder


def test_apply_reports_and_changes_only_what_differs(case: tuple[str, str, Recorder]) -> None:
    name, status, recorder = case
    assert status == CASES[name][3], recorder.requests
    changes = [r for r in recorder.changes() if not r.path.startswith("/upload/")]
    if status == "unchanged":
        assert changes == []
    elif name == "bucket-public":
        request = changes[0]
        assert (request.method, request.path) == ("PATCH", f"/storage/v1/b/{BUCKET}")
        assert request.body["iamConfiguration"] == {"publicAccessPrevention": "enforced"}
    elif name == "job-schedule":
        request = changes[0]
        assert (request.method, request.path) == ("PATCH", f"/v1{LOC}/jobs/ordertasks-reconcile")
        assert request.query["updateMask"] == ["schedule"] and request.body["schedule"] == "*/5 * * * *"
    elif name == "metric-filter":
        request = changes[0]
        assert (request.method, request.path) == ("PUT", f"/v2/projects/{PROJECT}/metrics/ordertasks_task_outcomes")
        assert request.body["filter"] == monitoring_file("metric-task-outcomes.json")["filter"]
    elif name == "function-ingress":
        request = next(r for r in changes if r.method == "PATCH")
        assert request.path == f"/v2{LOC}/functions/ordertasks-handler"
        assert request.body["serviceConfig"]["ingressSettings"] == "ALLOW_INTERNAL_ONLY"
        # --update-env-vars keeps what an operator set by hand.
        assert request.body["serviceConfig"]["environmentVariables"]["ORDERTASKS_HAND_SET"] == "kept"
