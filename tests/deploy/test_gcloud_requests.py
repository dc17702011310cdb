"""Every non-queue command of ``apply``, run by the real gcloud against a recording stand-in
for Google's APIs: each test asserts the HTTP request the command makes."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from ordertasks.infra.deploy import (SECTIONS, Resource, SourceOptions, StagedSource, Target, apply, build_plan,
                                     iam_bindings, source_files, stage_source)
from ordertasks.infra.deploy import secret_bindings
from ordertasks.infra.deploy._data import composite_indexes
from ordertasks.infra.deploy._monitoring import METRICS, alert_policies, monitoring_file
from ordertasks.infra.deploy._plan import APIS, deployed_env
from ordertasks.infra.deploy._services import GUNICORN
from tests.deploy.conftest import PROJECT, REGION, recorded_runner, target
from tests.deploy.recorder import Recorder, Request, serve

# The fixture runs the real gcloud about 45 times (one per resource) on a shared machine.
pytestmark = pytest.mark.timeout(1200)
LOC = f"/projects/{PROJECT}/locations/{REGION}"
EMAIL = "ordertasks-{}@" + PROJECT + ".iam.gserviceaccount.com"


@dataclass
class SectionRun:
    """What one section's apply printed and which requests reached the stand-in."""

    recorder: Recorder
    target: Target
    lines: list[str] = field(default_factory=list)


def _apply_one(resource: Resource, run: SectionRun, gcloud_env: dict[str, str]) -> None:
    apply([resource], recorded_runner(gcloud_env, run.recorder), run.lines.append)


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> StagedSource:
    """The deployables' source, staged as ``plan`` and ``apply`` stage it (an absolute directory:
    gcloud may run anywhere)."""
    return stage_source(target().catalog, SourceOptions(tmp_path_factory.mktemp("staging") / "deploy"))


@pytest.fixture(scope="module")
def applied(gcloud_env: dict[str, str], staged: StagedSource) -> Iterator[dict[str, SectionRun]]:
    """Apply every section but queues, each against its own recorder, resources in parallel."""
    sections = [s for s in SECTIONS if s != "queues"]
    with contextlib.ExitStack() as stack:
        plan_target = target(staging_dir=staged.root, source_digest=staged.digest)
        runs = {s: SectionRun(stack.enter_context(contextlib.contextmanager(serve)()), plan_target) for s in sections}
        for secret in plan_target.cloud.secrets:  # the operator created them: apply only checks
            runs["secrets"].recorder.canned[f"/v1/projects/{PROJECT}/secrets/{secret.secret}/versions/{secret.version}"] = {
                "name": f"projects/123456789/secrets/{secret.secret}/versions/1", "state": "ENABLED"}
        runs["apis"].recorder.canned[f"/v1/projects/{PROJECT}/services"] = {"services": [
            {"name": "projects/1/services/cloudtasks.googleapis.com", "config": {"name": "cloudtasks.googleapis.com"},
             "state": "ENABLED"}]}
        jobs = [(r, runs[r.section]) for r in build_plan(plan_target, sections)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            for future in [pool.submit(_apply_one, r, run, gcloud_env) for r, run in jobs]:
                future.result()
        yield runs


def only(requests: list[Request]) -> Request:
    """The single request in ``requests``."""
    assert len(requests) == 1, requests
    return requests[0]


def test_apis_enables_only_the_missing_ones(applied: dict[str, SectionRun]) -> None:
    run = applied["apis"]
    request = only(run.recorder.find("POST", rf"^/v1/projects/{PROJECT}/services:batchEnable$"))
    assert sorted(request.body["serviceIds"]) == sorted(f"{a}.googleapis.com" for a in APIS if a != "cloudtasks")
    assert run.lines[0].startswith("[apis] APIs ") and ": updated (" in run.lines[0]


def test_accounts_are_created_with_their_ids(applied: dict[str, SectionRun]) -> None:
    requests = applied["accounts"].recorder.find("POST", rf"^/v1/projects/{PROJECT}/serviceAccounts$")
    assert sorted(r.body["accountId"] for r in requests) == [
        "ordertasks-checkout", "ordertasks-dispatcher", "ordertasks-handler", "ordertasks-scheduler"]
    assert all(r.body["serviceAccount"]["displayName"].startswith("ordertasks ") for r in requests)


def test_bucket_has_uniform_access_and_no_public_access(applied: dict[str, SectionRun]) -> None:
    request = only(applied["bucket"].recorder.find("POST", r"^/storage/v1/b$"))
    assert request.query["project"] == [PROJECT]
    assert request.body["name"] == f"{PROJECT}-invoices"
    assert request.body["location"] == REGION
    assert request.body["iamConfiguration"] == {"uniformBucketLevelAccess": {"enabled": True},
                                                "publicAccessPrevention": "enforced"}


def test_firestore_database_is_native_in_the_region(applied: dict[str, SectionRun]) -> None:
    request = only(applied["firestore"].recorder.find("POST", rf"^/v1/projects/{PROJECT}/databases$"))
    assert request.query["databaseId"] == ["(default)"]
    assert request.body["locationId"] == REGION
    assert request.body["type"] == "FIRESTORE_NATIVE"


def test_function_is_private_internal_and_runs_as_the_handler(applied: dict[str, SectionRun]) -> None:
    recorder = applied["function"].recorder
    request = only(recorder.find("POST", rf"^/v2{LOC}/functions$"))
    service, build = request.body["serviceConfig"], request.body["buildConfig"]
    assert request.query["functionId"] == ["ordertasks-handler"]
    assert service["ingressSettings"] == "ALLOW_INTERNAL_ONLY"
    assert service["serviceAccountEmail"] == EMAIL.format("handler")
    assert (service["maxInstanceCount"], service["maxInstanceRequestConcurrency"]) == (20, 8)
    assert (service["availableMemory"], service["availableCpu"], service["timeoutSeconds"]) == ("512Mi", "1", 300)
    assert service["environmentVariables"] == deployed_env(target())["handler"]
    assert {(e["key"], e["secret"], e["version"]) for e in service["secretEnvironmentVariables"]} == {
        (s.variable, s.secret, s.version) for s in target().cloud.secrets_for("handler")}
    assert service["environmentVariables"]["ORDERTASKS_OIDC_ALLOWED_EMAILS"] == EMAIL.format("dispatcher")
    assert (build["runtime"], build["entryPoint"]) == ("python312", "handle_task")
    assert request.body["labels"]["ordertasks-source"] == applied["function"].target.source_digest
    # --no-allow-unauthenticated: gcloud must not have granted allUsers anything.
    assert not recorder.find("POST", r":setIamPolicy$")


def test_function_upload_holds_exactly_the_staged_source(applied: dict[str, SectionRun], staged: StagedSource) -> None:
    upload = only(applied["function"].recorder.find("PUT", r"^/upload/"))
    names = zipfile.ZipFile(io.BytesIO(upload.body["zip"])).namelist()
    assert sorted(n for n in names if not n.endswith("/")) == sorted(source_files(staged.source))
    assert {"main.py", "requirements.txt", "tasks.toml"} <= set(names)
    assert any(n.startswith("ordertasks-") and n.endswith(".whl") for n in names)


IAM_PATHS = {
    "queue": lambda b: rf"^/v2{LOC}/queues/{b.target}:setIamPolicy$",
    "service-account": lambda b: rf"^/v1/projects/{PROJECT}/serviceAccounts/{b.target}:setIamPolicy$",
    "run-service": lambda b: rf"^/v\d{LOC}/services/{b.target}:setIamPolicy$",
    "project": lambda b: rf"^/v\d/projects/{b.target}:setIamPolicy$",
    "bucket": lambda b: rf"^/storage/v1/b/{b.target}/iam$",
}


def _grants(request: Request) -> set[tuple[str, str]]:
    policy = request.body.get("policy", request.body)
    return {(m, entry["role"]) for entry in policy.get("bindings", []) for m in entry["members"]}


@pytest.mark.parametrize("index", range(len(iam_bindings(target()))))
def test_each_binding_sets_one_role_on_one_resource(applied: dict[str, SectionRun], index: int) -> None:
    binding = iam_bindings(target())[index]
    recorder = applied["iam"].recorder
    method = "PUT" if binding.scope == "bucket" else "POST"
    requests = [r for r in recorder.find(method, IAM_PATHS[binding.scope](binding))
                if (binding.member, binding.role) in _grants(r)]
    assert only(requests)


def test_iam_requests_grant_nothing_beyond_the_bindings(applied: dict[str, SectionRun]) -> None:
    wanted = {(b.member, b.role) for b in iam_bindings(target())}
    changes = applied["iam"].recorder.changes()
    # Grants on queues are one per queue (enqueuer, and viewer for the auditor): one request each.
    per_queue = {(b.member, b.role) for b in iam_bindings(target()) if b.scope == "queue"}
    assert len(changes) == len(wanted) + len(per_queue) * (len(target().catalog.queues) - 1)
    assert set().union(*(_grants(r) for r in changes)) == wanted


def test_ttl_is_enabled_on_idempotency_expire_at(applied: dict[str, SectionRun]) -> None:
    path = rf"^/v1/projects/{PROJECT}/databases/\(default\)/collectionGroups/idempotency/fields/expire_at$"
    request = only(applied["ttl"].recorder.find("PATCH", path))
    assert request.query["updateMask"] == ["ttlConfig"]
    assert request.body["ttlConfig"] == {}  # an empty ttlConfig is how the API says "enable"


@pytest.mark.parametrize("job", ["reconcile", "sweep"])
def test_scheduler_jobs_call_maintenance_with_the_scheduler_token(applied: dict[str, SectionRun], job: str) -> None:
    request = only([r for r in applied["scheduler"].recorder.find("POST", rf"^/v1{LOC}/jobs$")
                    if r.body["name"].endswith(f"/jobs/ordertasks-{job}")])
    http, url = request.body["httpTarget"], target().maintenance_url
    assert http["uri"] == f"{url}/{job}"
    assert http["httpMethod"] == "POST"
    assert json.loads(base64.b64decode(http["body"])) == {"action": job}
    assert http["oidcToken"] == {"serviceAccountEmail": EMAIL.format("scheduler"), "audience": url}
    assert EMAIL.format("scheduler") != EMAIL.format("dispatcher")
    assert request.body["schedule"] == target().schedules[job]


def test_maintenance_is_its_own_private_function(applied: dict[str, SectionRun]) -> None:
    recorder = applied["maintenance"].recorder
    request = only(recorder.find("POST", rf"^/v2{LOC}/functions$"))
    service = request.body["serviceConfig"]
    assert request.query["functionId"] == ["ordertasks-maintenance"]
    assert request.body["buildConfig"]["entryPoint"] == "run_maintenance"
    assert service["ingressSettings"] == "ALLOW_INTERNAL_ONLY"
    assert service["serviceAccountEmail"] == EMAIL.format("checkout")
    assert service["environmentVariables"]["ORDERTASKS_OIDC_ALLOWED_EMAILS"] == EMAIL.format("scheduler")
    assert "secretEnvironmentVariables" not in service  # it reads no secret
    assert not recorder.find("POST", r":setIamPolicy$")


def test_checkout_runs_on_cloud_run_from_the_same_source(applied: dict[str, SectionRun], staged: StagedSource) -> None:
    recorder = applied["checkout"].recorder
    build = only(recorder.find("POST", rf"^/v2{LOC}/builds:submit$"))
    assert build.body["buildpackBuild"] and build.body["storageSource"]["object"]
    upload = only(recorder.find("POST", r"^/upload/storage/v1/b/[^/]+/o$"))
    names = zipfile.ZipFile(io.BytesIO(upload.body["zip"])).namelist()
    assert sorted(n for n in names if not n.endswith("/")) == sorted(source_files(staged.source))
    service = only(recorder.find("POST", rf"^/apis/serving.knative.dev/v1/namespaces/{PROJECT}/services$")).body
    spec = service["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert service["metadata"]["name"] == "ordertasks-checkout"
    assert spec["serviceAccountName"] == EMAIL.format("checkout")
    assert (container["command"], container["args"]) == (["gunicorn"], list(GUNICORN))
    plain = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert plain == deployed_env(target())["checkout"]
    assert secrets == {s.variable: {"name": s.secret, "key": s.version} for s in target().cloud.secrets_for("checkout")}
    # --no-allow-unauthenticated: nobody was granted run.invoker.
    assert not recorder.find("POST", r":setIamPolicy$")


def test_each_secret_grant_names_one_account(applied: dict[str, SectionRun]) -> None:
    recorder = applied["secrets"].recorder
    for binding in secret_bindings(target()):
        request = only(recorder.find("POST", rf"^/v1/projects/{PROJECT}/secrets/{binding.target}:setIamPolicy$"))
        assert _grants(request) == {(binding.member, "roles/secretmanager.secretAccessor")}


def test_log_based_metrics_hold_the_files_filters_and_labels(applied: dict[str, SectionRun]) -> None:
    requests = applied["monitoring"].recorder.find("POST", rf"^/v2/projects/{PROJECT}/metrics$")
    by_name = {r.body["name"]: r.body for r in requests}
    assert set(by_name) == set(METRICS)
    for name, filename in METRICS.items():
        want = monitoring_file(filename)
        assert by_name[name]["filter"] == want["filter"]
        assert by_name[name]["labelExtractors"] == want["labelExtractors"]


def test_alert_policies_notify_the_catalog_channel(applied: dict[str, SectionRun]) -> None:
    requests = applied["monitoring"].recorder.find("POST", rf"^/v\d/projects/{PROJECT}/alertPolicies$")
    sent = {r.body["displayName"]: r.body for r in requests}
    assert set(sent) == {p["displayName"] for p in alert_policies(target())}
    for policy in sent.values():
        assert policy["notificationChannels"] == [target().cloud.notification_channel]
    retry = sent["ordertasks: retry rate"]["conditions"][0]["conditionThreshold"]
    assert retry["thresholdValue"] == target().cloud.retry_rate_threshold and retry["denominatorFilter"]
    oldest = sent["ordertasks: oldest task"]["conditions"][0]["conditionThreshold"]
    assert oldest["thresholdValue"] == target().cloud.oldest_task_minutes * 60_000
    auditor = sent["ordertasks: auditor acted"]["conditions"][0]["conditionThreshold"]
    assert "ordertasks_auditor_actions" in auditor["filter"] and auditor["thresholdValue"] == 0


def test_dashboard_is_the_file_in_infra_monitoring(applied: dict[str, SectionRun]) -> None:
    request = only(applied["monitoring"].recorder.find("POST", rf"^/v1/projects/{PROJECT}/dashboards$"))
    assert request.body["mosaicLayout"] == monitoring_file("dashboard.json")["mosaicLayout"]


def test_composite_indexes_are_created(applied: dict[str, SectionRun]) -> None:
    requests = applied["indexes"].recorder.find("POST", r"/collectionGroups/[^/]+/indexes$")
    sent = {(r.path.split("/")[-2], tuple((f["fieldPath"], f["order"].lower()) for f in r.body["fields"]))
            for r in requests}
    assert sent == {(group, tuple(fields)) for group, fields in composite_indexes()}


def test_every_section_reports_each_resource_created(applied: dict[str, SectionRun]) -> None:
    for section, run in applied.items():
        labels = [r.label for r in build_plan(target(), [section])]
        states = {line.rsplit(": ", 1)[1] for line in run.lines if line.startswith("[")}
        assert len([line for line in run.lines if line.startswith("[")]) == len(labels), section
        # apis: some were enabled already; secrets: the operator created them, apply only checks.
        assert states <= {"created"} or section in ("apis", "secrets"), (section, states)


def test_invoker_grant_matches_what_gcloud_functions_grants_for_gen2(recorder: Recorder, gcloud_env: dict[str, str]) -> None:
    # Our plan grants run.invoker on the Run service directly; gcloud's own gen2 command must agree.
    name = f"projects/{PROJECT}/locations/{REGION}/functions/ordertasks-handler"
    recorder.canned[f"/v2/{name}"] = {"name": name, "environment": "GEN_2",
                                      "serviceConfig": {"service": f"projects/{PROJECT}/locations/{REGION}/services/ordertasks-handler"}}
    run = recorded_runner(gcloud_env, recorder)
    ours = next(r.create for r in build_plan(target(), ["iam"]) if "run.invoker" in r.label)
    member = next(part for part in ours if part.startswith("--member="))
    theirs = ("functions", "add-invoker-policy-binding", "ordertasks-handler", f"--region={REGION}",
              f"--project={PROJECT}", member)
    for command in (ours, theirs):
        assert run(command).returncode == 0
    first, second = recorder.find("POST", r":setIamPolicy$")
    assert first.path == second.path == f"/v1{LOC}/services/ordertasks-handler:setIamPolicy"
    assert _grants(first) == _grants(second) == {(member.split("=", 1)[1], "roles/run.invoker")}


def test_firestore_grants_carry_the_database_condition(applied: dict[str, SectionRun]) -> None:
    requests = applied["iam"].recorder.find("POST", rf"^/v\d/projects/{PROJECT}:setIamPolicy$")
    conditions = [entry.get("condition") for r in requests for entry in r.body["policy"]["bindings"]]
    assert len(conditions) == 2 and all(c == {"expression": f'resource.name=="projects/{PROJECT}/databases/(default)"',
                                               "title": "ordertasks-database"} for c in conditions)
