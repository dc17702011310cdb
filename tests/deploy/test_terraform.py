"""``deploy export --format terraform``: the module parses with python-hcl2, holds exactly the
plan's resources with the plan's settings, and passes checkov.

The comparison reads both sides independently of the exporter: the plan's gcloud commands
flag by flag, the module through python-hcl2 with a small evaluator for the references it
uses (variables at their defaults, ``google_service_account`` emails, ``base64encode``,
``file``). Each plan step and each Terraform block becomes a (kind, settings) signature; the
two multisets must be equal: every planned resource has exactly one counterpart, and no
Terraform resource lacks a planned one. Terraform itself cannot be installed here.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest

from ordertasks.infra.config import DEFAULT_CATALOG, REPO_ROOT, load_catalog
from ordertasks.infra.deploy import (Resource, Target, TerraformExportError, build_plan, main, make_target,
                                     source_files, write_terraform)
from ordertasks.infra.deploy._source import source_digest
from ordertasks.infra.deploy._terraform import Module, symbolic_target, translate
from tests.deploy.conftest import CLOUD_SECTION, COMPLETE, PROJECT, REGION, target
from tests.deploy.shop import SHOP_CATALOG, write_shop
from tests.support.servers import need_binary

Signature = tuple[str, str]
INGRESS = {"internal-only": "ALLOW_INTERNAL_ONLY", "internal-and-gclb": "ALLOW_INTERNAL_AND_GCLB", "all": "ALLOW_ALL"}
GRANT_SCOPES = {("tasks", "queues"): "queue", ("iam", "service-accounts"): "account", ("run", "services"): "run",
                ("projects",): "project", ("storage", "buckets"): "bucket", ("secrets",): "secret"}
GRANT_TYPES = {"google_cloud_tasks_queue_iam_member": ("queue", "name"),
               "google_service_account_iam_member": ("account", "service_account_id"),
               "google_cloud_run_v2_service_iam_member": ("run", "name"),
               "google_project_iam_member": ("project", "project"),
               "google_storage_bucket_iam_member": ("bucket", "bucket"),
               "google_secret_manager_secret_iam_member": ("secret", "secret_id")}


def signature(kind: str, settings: dict[str, Any]) -> Signature:
    return kind, json.dumps(settings, sort_keys=True)


# --- the plan side: gcloud commands, read flag by flag ------------------------------------

def read(command: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """Positional words and flags (a repeated flag's values joined by newlines)."""
    words: list[str] = []
    flags: dict[str, str] = {}
    for part in command:
        if part.startswith("--"):
            name, _, value = part.partition("=")
            flags[name] = value if name not in flags else flags[name] + "\n" + value
        else:
            words.append(part)
    return words, flags


def env_of(value: str) -> dict[str, str]:
    separator = ","
    if value.startswith("^"):
        separator, value = value[1:].split("^", 1)
    return dict(pair.split("=", 1) for pair in value.split(separator))


def mounts_of(value: str | None) -> list[list[str]]:
    pairs = [item.split("=", 1) for item in (value or "").split(",") if item]
    return sorted([variable, *reference.split(":", 1)] for variable, reference in pairs)


def planned_queue(words: list[str], f: dict[str, str]) -> list[Signature]:
    uri = dict(item.split(":", 1) for item in f["--http-uri-override"].split(","))
    port = f":{uri['port']}" if "port" in uri else ""
    return [signature("queue", {
        "name": words[3], "location": f["--location"], "rate": [float(f["--max-dispatches-per-second"]),
                                                                int(f["--max-concurrent-dispatches"])],
        "retry": [int(f["--max-attempts"]), f["--min-backoff"], f["--max-backoff"], int(f["--max-doublings"]),
                  f["--max-retry-duration"]],
        "method": f["--http-method-override"].upper(), "uri": f"{uri['scheme']}://{uri['host']}{port}{uri['path']}",
        "mode": uri["mode"].upper(),
        "oidc": [f["--http-oidc-service-account-email-override"], f["--http-oidc-token-audience-override"]]})]


def planned_function(words: list[str], f: dict[str, str]) -> list[Signature]:
    return [signature("function", {
        "name": words[2], "location": f["--region"], "runtime": f["--runtime"], "entry_point": f["--entry-point"],
        "ingress": INGRESS[f["--ingress-settings"]], "account": f["--service-account"],
        "instances": int(f["--max-instances"]), "concurrency": int(f["--concurrency"]), "memory": f["--memory"],
        "cpu": f.get("--cpu"), "timeout": int(f["--timeout"].rstrip("s")), "env": env_of(f["--update-env-vars"]),
        "secrets": mounts_of(f.get("--set-secrets")), "labels": env_of(f["--update-labels"]),
        "source": "google_storage_bucket_object"}), signature("function source", {})]


def planned_service(words: list[str], f: dict[str, str]) -> list[Signature]:
    found = [signature("service", {
        "name": words[2], "location": f["--region"], "account": f["--service-account"], "image": "<var.checkout_image>",
        "command": f["--command"].split(","), "args": f["--args"].split(","), "instances": int(f["--max-instances"]),
        "env": env_of(f["--update-env-vars"]), "secrets": mounts_of(f.get("--set-secrets")),
        "labels": env_of(f["--update-labels"])})]
    if "--allow-unauthenticated" in f:
        found.append(signature("grant", {"on": "run", "target": words[2], "location": f["--region"],
                                         "role": "roles/run.invoker", "member": "allUsers", "condition": None}))
    return found


def planned_grant(words: list[str], f: dict[str, str]) -> list[Signature]:
    at = words.index("add-iam-policy-binding")
    condition = re.fullmatch(r"expression=(.*),title=(.*)", f.get("--condition", ""))
    return [signature("grant", {"on": GRANT_SCOPES[tuple(words[:at])], "target": words[at + 1].removeprefix("gs://"),
                                "location": f.get("--location") or f.get("--region"), "role": f["--role"],
                                "member": f["--member"], "condition": list(condition.groups()) if condition else None})]


def planned_job(words: list[str], f: dict[str, str]) -> list[Signature]:
    return [signature("job", {"name": words[4], "region": f["--location"], "schedule": f["--schedule"],
                              "time_zone": f["--time-zone"], "uri": f["--uri"], "method": f["--http-method"].upper(),
                              "body": f["--message-body"],
                              "oidc": [f["--oidc-service-account-email"], f["--oidc-token-audience"]]})]


def monitoring_definition(path: str) -> Any:
    """The JSON a monitoring command reads: the staged file when the plan staged it, else the
    repository's original (the plan names the staged copy, under the working directory)."""
    staged = Path(path)
    return json.loads((staged if staged.is_file() else REPO_ROOT / "infra" / "monitoring" / staged.name)
                      .read_text(encoding="utf-8"))


def metric_settings(name: str, doc: dict[str, Any]) -> dict[str, Any]:
    descriptor = doc["metricDescriptor"]
    return {"name": name, "description": doc["description"], "filter": doc["filter"],
            "label_extractors": doc["labelExtractors"],
            "kind": [descriptor["metricKind"], descriptor["valueType"], descriptor["unit"]],
            "labels": [[lab["key"], lab["valueType"], lab["description"]] for lab in descriptor["labels"]]}


def aggregations(items: list[dict[str, Any]]) -> list[list[Any]]:
    return [[a["alignmentPeriod"], a["perSeriesAligner"], a["crossSeriesReducer"], a["groupByFields"]] for a in items]


def policy_settings(doc: dict[str, Any]) -> dict[str, Any]:
    """An alert policy's thresholds, filters and routing, from API JSON (camelCase)."""
    conditions = [{"name": c["displayName"], "filter": t["filter"], "comparison": t["comparison"],
                   "threshold": float(t["thresholdValue"]), "duration": t["duration"], "trigger": t["trigger"]["count"],
                   "aggregations": aggregations(t["aggregations"]), "denominator": t.get("denominatorFilter"),
                   "denominator_aggregations": aggregations(t.get("denominatorAggregations", []))}
                  for c in doc["conditions"] for t in [c["conditionThreshold"]]]
    return {"name": doc["displayName"], "combiner": doc["combiner"], "channels": doc["notificationChannels"],
            "documentation": [doc["documentation"]["content"], doc["documentation"]["mimeType"]],
            "user_labels": doc["userLabels"], "conditions": conditions}


PLANNED: dict[tuple[str, ...], Callable[[list[str], dict[str, str]], list[Signature]]] = {
    ("services", "enable"): lambda w, f: [signature("api", {"service": api}) for api in w[2:]],
    ("iam", "service-accounts", "create"): lambda w, f: [signature("account", {"account_id": w[3],
                                                                               "display_name": f["--display-name"]})],
    ("secrets", "versions", "describe"): lambda w, f: [signature("secret", {"secret_id": f["--secret"]})],
    ("storage", "buckets", "create"): lambda w, f: [signature("bucket", {
        "name": w[3].removeprefix("gs://"), "location": f["--location"],
        "uniform": "--uniform-bucket-level-access" in f, "prevention": "enforced" if "--public-access-prevention" in f
        else "inherited"})],
    ("firestore", "databases", "create"): lambda w, f: [signature("firestore", {
        "name": f["--database"], "location": f["--location"], "type": f["--type"].upper().replace("-", "_")})],
    ("tasks", "queues", "create"): planned_queue,
    ("functions", "deploy"): planned_function,
    ("run", "deploy"): planned_service,
    ("firestore", "fields", "ttls", "update"): lambda w, f: [signature("ttl", {
        "collection": f["--collection-group"], "field": w[4], "database": f["--database"]})],
    ("firestore", "indexes", "composite", "create"): lambda w, f: [signature("index", {
        "collection": f["--collection-group"], "database": f["--database"],
        "fields": [[c["field-path"], c["order"].upper()] for c in
                   (dict(p.split("=", 1) for p in config.split(",")) for config in f["--field-config"].split("\n"))]})],
    ("scheduler", "jobs", "create", "http"): planned_job,
    ("logging", "metrics", "create"): lambda w, f: [signature("metric", metric_settings(
        w[3], monitoring_definition(f["--config-from-file"])))],
    ("alpha", "monitoring", "policies", "create"): lambda w, f: [signature("policy", policy_settings(
        json.loads(f["--policy"])))],
    ("monitoring", "dashboards", "create"): lambda w, f: [signature("dashboard", {
        "json": monitoring_definition(f["--config-from-file"])})],
}


def planned(resources: list[Resource]) -> Counter[Signature]:
    """One signature per resource the plan creates (the functions share one source object)."""
    found: Counter[Signature] = Counter()
    for resource in resources:
        words, flags = read(resource.create)
        reader = planned_grant if "add-iam-policy-binding" in words else next(
            r for prefix, r in PLANNED.items() if tuple(words[:len(prefix)]) == prefix)
        found.update(reader(words, flags))
    if found[signature("function source", {})]:
        found[signature("function source", {})] = 1
    return found


# --- the Terraform side: python-hcl2 and a small evaluator --------------------------------

def unquote(text: str) -> str:
    return text[1:-1] if text.startswith('"') and text.endswith('"') else text


TEMPLATE = re.compile(r'\$\$\{|%%\{|\$\{([^{}]*)\}|\\u([0-9a-fA-F]{4})|\\(.)|(.)', re.S)
ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


class Parsed:
    """Every block of the written module, and the values its expressions evaluate to."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.blocks: dict[str, dict[str, Any]] = {}
        self.variables: dict[str, dict[str, Any]] = {}
        for path in sorted(directory.glob("*.tf")):
            doc = hcl2.load(path.open(encoding="utf-8"))
            for kind in ("resource", "data"):
                for type_, name, body in self.entries(doc.get(kind, [])):
                    address = ".".join([*([] if kind == "resource" else ["data"]), type_, name])
                    assert address not in self.blocks, f"{address} is declared twice"
                    self.blocks[address] = body
            for entry in doc.get("variable", []):
                self.variables.update({unquote(k): v for k, v in entry.items()})

    @staticmethod
    def entries(items: list[dict[str, Any]]) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for entry in items:
            for type_, named in entry.items():
                for name, body in named.items():
                    yield unquote(type_), unquote(name), body

    def value(self, raw: Any) -> Any:
        """What an argument evaluates to: strings unescaped and interpolated, references followed."""
        if isinstance(raw, list):
            return [self.value(item) for item in raw]
        if isinstance(raw, dict):
            return {unquote(k): self.value(v) for k, v in raw.items() if not k.startswith("__")}
        if isinstance(raw, str) and raw.startswith('"'):
            return self.template(raw[1:-1])
        if isinstance(raw, str) and raw.startswith("${") and raw.endswith("}"):
            return self.expression(raw[2:-1])
        return raw

    def template(self, text: str) -> str:
        parts = []
        for found in TEMPLATE.finditer(text):
            literal, reference, code, escape, char = found[0], found[1], found[2], found[3], found[4]
            parts.append("${" if literal == "$${" else "%{" if literal == "%%{" else
                         str(self.expression(reference)) if reference is not None else
                         chr(int(code, 16)) if code else ESCAPES[escape] if escape else char)
        return "".join(parts)

    def expression(self, text: str) -> Any:
        call = re.fullmatch(r"(\w+)\((.*)\)", text, re.S)
        if call:
            return self.function(call[1], self.value(call[2] if call[2].startswith('"') else "${" + call[2] + "}"))
        if text.startswith("var."):
            variable = self.variables[text[4:]]
            return self.value(variable["default"]) if "default" in variable else f"<{text}>"
        if text == "path.module":
            return str(self.directory)
        if text == "data.google_project.project.number":
            return "PROJECT_NUMBER"      # what the plan prints until apply looks the number up
        if text.startswith("["):
            return json.loads(text)
        address, attribute = text.rsplit(".", 1)
        return self.attribute(address, attribute)

    def function(self, name: str, argument: Any) -> Any:
        if name == "base64encode":
            return base64.b64encode(argument.encode()).decode()
        if name == "file":
            return Path(argument).read_text(encoding="utf-8")
        assert name == "toset", f"the module calls {name}(), which this test does not evaluate"
        return argument

    def attribute(self, address: str, attribute: str) -> Any:
        """A block's argument, or what Google computes for a service account."""
        body = self.blocks[address]
        if address.startswith("google_service_account.") and attribute in ("email", "name"):
            email = f"{self.value(body['account_id'])}@{self.value(body['project'])}.iam.gserviceaccount.com"
            return email if attribute == "email" else f"projects/{self.value(body['project'])}/serviceAccounts/{email}"
        return self.value(body[attribute])


def one(block: Any) -> dict[str, Any]:
    """A nested block (python-hcl2 gives each as a list of one)."""
    assert isinstance(block, list) and len(block) == 1, block
    only: dict[str, Any] = block[0]
    return only


def tf_queue(p: Parsed, b: dict[str, Any]) -> list[Signature]:
    rate, retry, target = one(b["rate_limits"]), one(b["retry_config"]), one(b["http_target"])
    uri, oidc = one(target["uri_override"]), one(target["oidc_token"])
    port = f":{p.value(uri['port'])}" if "port" in uri else ""
    path = p.value(one(uri["path_override"])["path"])
    return [signature("queue", {
        "name": p.value(b["name"]), "location": p.value(b["location"]),
        "rate": [float(rate["max_dispatches_per_second"]), rate["max_concurrent_dispatches"]],
        "retry": [retry["max_attempts"], p.value(retry["min_backoff"]), p.value(retry["max_backoff"]),
                  retry["max_doublings"], p.value(retry["max_retry_duration"])],
        "method": p.value(target["http_method"]),
        "uri": f"{p.value(uri['scheme']).lower()}://{p.value(uri['host'])}{port}{path}",
        "mode": p.value(uri["uri_override_enforce_mode"]),
        "oidc": [p.value(oidc["service_account_email"]), p.value(oidc["audience"])]})]


def tf_function(p: Parsed, b: dict[str, Any]) -> list[Signature]:
    build, service = one(b["build_config"]), one(b["service_config"])
    source = one(one(build["source"])["storage_source"])
    mounted = p.value(service.get("secret_environment_variables", []))
    secrets = sorted([s["key"], s["secret"], s["version"]] for s in mounted)
    return [signature("function", {
        "name": p.value(b["name"]), "location": p.value(b["location"]), "runtime": p.value(build["runtime"]),
        "entry_point": p.value(build["entry_point"]), "ingress": p.value(service["ingress_settings"]),
        "account": p.value(service["service_account_email"]), "instances": service["max_instance_count"],
        "concurrency": service["max_instance_request_concurrency"], "memory": p.value(service["available_memory"]),
        "cpu": p.value(service.get("available_cpu")), "timeout": service["timeout_seconds"],
        "env": p.value(service["environment_variables"]), "secrets": secrets, "labels": p.value(b["labels"]),
        "source": source["object"][2:].split(".")[0]})]


def tf_service(p: Parsed, b: dict[str, Any]) -> list[Signature]:
    template = one(b["template"])
    container = one(template["containers"])
    env = p.value(container["env"])
    return [signature("service", {
        "name": p.value(b["name"]), "location": p.value(b["location"]), "account": p.value(template["service_account"]),
        "image": p.value(container["image"]), "command": p.value(container["command"]),
        "args": p.value(container["args"]), "instances": one(template["scaling"])["max_instance_count"],
        "env": {e["name"]: e["value"] for e in env if "value" in e},
        "secrets": sorted([e["name"], ref["secret"], ref["version"]] for e in env if "value_source" in e
                          for ref in [e["value_source"][0]["secret_key_ref"][0]]),
        "labels": p.value(b["labels"])})]


def tf_job(p: Parsed, b: dict[str, Any]) -> list[Signature]:
    target = one(b["http_target"])
    oidc = one(target["oidc_token"])
    return [signature("job", {
        "name": p.value(b["name"]), "region": p.value(b["region"]), "schedule": p.value(b["schedule"]),
        "time_zone": p.value(b["time_zone"]), "uri": p.value(target["uri"]), "method": p.value(target["http_method"]),
        "body": base64.b64decode(p.value(target["body"])).decode(),
        "oidc": [p.value(oidc["service_account_email"]), p.value(oidc["audience"])]})]


def tf_grant(type_: str) -> Callable[[Parsed, dict[str, Any]], list[Signature]]:
    scope, names = GRANT_TYPES[type_]

    def read_grant(p: Parsed, b: dict[str, Any]) -> list[Signature]:
        condition = one(b["condition"]) if "condition" in b else None
        target_name = str(p.value(b[names])).rsplit("/", 1)[-1]
        return [signature("grant", {
            "on": scope, "target": target_name, "location": p.value(b.get("location")), "role": p.value(b["role"]),
            "member": p.value(b["member"]),
            "condition": [p.value(condition["expression"]), p.value(condition["title"])] if condition else None})]
    return read_grant


def tf_metric(p: Parsed, b: dict[str, Any]) -> list[Signature]:
    descriptor = one(b["metric_descriptor"])
    return [signature("metric", {
        "name": p.value(b["name"]), "description": p.value(b["description"]), "filter": p.value(b["filter"]),
        "label_extractors": p.value(b["label_extractors"]),
        "kind": [p.value(descriptor[k]) for k in ("metric_kind", "value_type", "unit")],
        "labels": [[p.value(lab["key"]), p.value(lab["value_type"]), p.value(lab["description"])]
                   for lab in descriptor["labels"]]})]


def tf_aggregations(p: Parsed, items: list[dict[str, Any]]) -> list[list[Any]]:
    return [[p.value(a["alignment_period"]), p.value(a["per_series_aligner"]), p.value(a["cross_series_reducer"]),
             p.value(a["group_by_fields"])] for a in items]


def tf_policy(p: Parsed, b: dict[str, Any]) -> list[Signature]:
    conditions = [{"name": p.value(c["display_name"]), "filter": p.value(t["filter"]),
                   "comparison": p.value(t["comparison"]), "threshold": float(t["threshold_value"]),
                   "duration": p.value(t["duration"]), "trigger": one(t["trigger"])["count"],
                   "aggregations": tf_aggregations(p, t["aggregations"]),
                   "denominator": p.value(t.get("denominator_filter")),
                   "denominator_aggregations": tf_aggregations(p, t.get("denominator_aggregations", []))}
                  for c in b["conditions"] for t in [one(c["condition_threshold"])]]
    documentation = one(b["documentation"])
    return [signature("policy", {
        "name": p.value(b["display_name"]), "combiner": p.value(b["combiner"]),
        "channels": p.value(b["notification_channels"]),
        "documentation": [p.value(documentation["content"]), p.value(documentation["mime_type"])],
        "user_labels": p.value(b["user_labels"]), "conditions": conditions})]


TERRAFORM: dict[str, Callable[[Parsed, dict[str, Any]], list[Signature]]] = {
    "google_project_service": lambda p, b: [signature("api", {"service": api}) for api in p.value(b["for_each"])],
    "google_service_account": lambda p, b: [signature("account", {"account_id": p.value(b["account_id"]),
                                                                  "display_name": p.value(b["display_name"])})],
    "data.google_secret_manager_secret": lambda p, b: [signature("secret", {"secret_id": p.value(b["secret_id"])})],
    "google_storage_bucket": lambda p, b: [signature("bucket", {
        "name": p.value(b["name"]), "location": p.value(b["location"]), "uniform": b["uniform_bucket_level_access"],
        "prevention": p.value(b["public_access_prevention"])})],
    "google_firestore_database": lambda p, b: [signature("firestore", {
        "name": p.value(b["name"]), "location": p.value(b["location_id"]), "type": p.value(b["type"])})],
    "google_cloud_tasks_queue": tf_queue,
    "google_cloudfunctions2_function": tf_function,
    "google_storage_bucket_object": lambda p, b: [signature("function source", {})],
    "google_cloud_run_v2_service": tf_service,
    **{type_: tf_grant(type_) for type_ in GRANT_TYPES},
    "google_firestore_field": lambda p, b: [signature("ttl", {
        "collection": p.value(b["collection"]), "field": p.value(b["field"]), "database": p.value(b["database"])})],
    "google_firestore_index": lambda p, b: [signature("index", {
        "collection": p.value(b["collection"]), "database": p.value(b["database"]),
        "fields": [[p.value(f["field_path"]), p.value(f["order"])] for f in b["fields"]]})],
    "google_cloud_scheduler_job": tf_job,
    "google_logging_metric": tf_metric,
    "google_monitoring_alert_policy": tf_policy,
    "google_monitoring_dashboard": lambda p, b: [signature("dashboard", {
        "json": json.loads(p.value(b["dashboard_json"]))})],
}
NOT_RESOURCES = ("data.google_project",)
"""Read, not created: the project number the checkout's Cloud Run URL holds (apply looks it up too)."""


def exported(p: Parsed) -> Counter[Signature]:
    found: Counter[Signature] = Counter()
    for address, body in p.blocks.items():
        type_ = address.rsplit(".", 1)[0]
        if type_ in NOT_RESOURCES:
            continue
        assert type_ in TERRAFORM, f"{address}: a Terraform resource type with no planned counterpart"
        found.update(TERRAFORM[type_](p, body))
    return found


# --- the targets the module is exported for -----------------------------------------------

def without_warehouse(directory: Path) -> Path:
    """The complete catalog without the warehouse queue, its kind and its token."""
    text = DEFAULT_CATALOG.read_text(encoding="utf-8")
    for table in (r"queues\.ordertasks-warehouse", r"kinds\.notify_warehouse"):
        text = re.sub(rf"\[{table}\].*?(?=\n\[)", "", text, flags=re.S)
    cloud = "".join(line for line in CLOUD_SECTION.read_text(encoding="utf-8").splitlines(keepends=True)
                    if not line.startswith("ORDERTASKS_WAREHOUSE_TOKEN"))
    path = directory / "no-warehouse.toml"
    path.write_text(text + "\n" + cloud, encoding="utf-8")
    return path


def variant(name: str, directory: Path) -> Target:
    if name == "complete":
        return target()
    if name == "public checkout on its Cloud Run URL":
        return make_target(load_catalog(COMPLETE), PROJECT, REGION, allow_unauthenticated=True)
    if name == "no warehouse":
        return target(without_warehouse(directory))
    # Values Terraform would read as templates or escapes, a handler URL with a port, a named bucket.
    return target(sets=['seller_name=Shop ${HOME} %{if} "quoted" back\\slash'], bucket="named-invoices",
                  handler_url="https://tasks.my-shop.example:8443/handle")


VARIANTS = ("complete", "public checkout on its Cloud Run URL", "no warehouse", "odd values")


@pytest.fixture(params=VARIANTS)
def export(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Target, Path]:
    t = variant(request.param, tmp_path)
    write_terraform(t, tmp_path / "module")
    return t, tmp_path / "module"


def test_every_file_parses_with_python_hcl2(export: tuple[Target, Path]) -> None:
    files = sorted(export[1].glob("*.tf"))
    assert {"versions.tf", "variables.tf", "outputs.tf", "queues.tf", "iam.tf"} <= {f.name for f in files}
    for path in files:
        assert hcl2.load(path.open(encoding="utf-8")), path.name


def test_each_planned_resource_has_exactly_one_terraform_counterpart(export: tuple[Target, Path]) -> None:
    t, directory = export
    want, have = planned(build_plan(t)), exported(Parsed(directory))
    missing = [f"{kind} {settings} (planned {n}, in the module {have[(kind, settings)]})"
               for (kind, settings), n in want.items() if have[(kind, settings)] != n]
    assert not missing, "plan resources without exactly one Terraform counterpart:\n" + "\n".join(missing)


def test_no_terraform_resource_lacks_a_planned_counterpart(export: tuple[Target, Path]) -> None:
    t, directory = export
    extra = planned(build_plan(t))
    extra.subtract(exported(Parsed(directory)))
    assert not [sig for sig, n in extra.items() if n < 0], [sig for sig, n in extra.items() if n < 0]


def test_project_and_region_are_variables_with_the_plans_defaults(export: tuple[Target, Path]) -> None:
    t, directory = export
    parsed = Parsed(directory)
    text = "\n".join(p.read_text(encoding="utf-8") for p in directory.glob("*.tf") if p.name != "variables.tf")
    assert (parsed.expression("var.project"), parsed.expression("var.region")) == (t.project, t.region)
    # Nothing derived from them is spelled out: change the variables and everything follows.
    assert f'"{t.project}' not in text and f"-{t.project}." not in text and f'"{t.region}"' not in text
    assert all("google_project_service.apis" in str(body.get("depends_on", "")) for address, body in
               parsed.blocks.items() if not address.startswith(("google_project_service.", "data.google_project.")))


def test_outputs_name_the_handler_maintenance_and_checkout_urls(tmp_path: Path) -> None:
    write_terraform(target(), tmp_path)
    outputs = {unquote(k): v for entry in hcl2.load((tmp_path / "outputs.tf").open()).get("output", [])
               for k, v in entry.items()}
    parsed = Parsed(tmp_path)
    assert parsed.value(outputs["handler_url"]["value"]) == target().handler_url
    assert parsed.value(outputs["maintenance_url"]["value"]) == target().maintenance_url
    assert outputs["handler_function_url"]["value"] == "${google_cloudfunctions2_function.handler.url}"
    assert outputs["checkout_url"]["value"] == "${google_cloud_run_v2_service.checkout.uri}"


def checkov() -> str:
    """checkov lives in its own environment (.venv/checkov, see requirements-dev.txt), else on PATH."""
    beside = Path(sys.prefix) / "checkov" / "bin" / "checkov"
    return str(beside) if beside.exists() else need_binary("checkov", "the Terraform export is checked by checkov")


@pytest.mark.parametrize("name", ["complete", "public checkout on its Cloud Run URL"])
def test_checkov_finds_nothing_unjustified(name: str, tmp_path: Path) -> None:
    """No failed check above LOW; what fails by design is skipped inline with a reason.

    Without a Prisma Cloud key (and with --skip-download, which keeps checkov off the network)
    every severity is None, so every failed check counts: each must be fixed or skipped.
    """
    write_terraform(variant(name, tmp_path), tmp_path / "module")
    assert_checkov_clean(tmp_path / "module")


def assert_checkov_clean(directory: Path) -> None:
    """checkov finds no failed check in ``directory``; each skip carries a reason."""
    done = subprocess.run([checkov(), "-d", str(directory), "--framework", "terraform", "--compact",
                           "--skip-download", "-o", "json"], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip().startswith("{"), done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(done.stdout)
    results = report["results"]
    assert report["summary"]["parsing_errors"] == 0 and report["summary"]["passed"] > 0
    failed = [(c["check_id"], c["resource"], c["severity"]) for c in results["failed_checks"]
              if c["severity"] not in ("LOW", "INFO")]
    assert not failed, f"checkov failed checks (fix them, or skip inline with a reason): {failed}"
    reasons = {c["check_id"]: c["check_result"].get("suppress_comment", "") for c in results["skipped_checks"]}
    assert all(len(reason.strip()) > 30 for reason in reasons.values()), reasons


def test_a_plan_step_or_flag_without_a_mapping_stops_the_export() -> None:
    t = target()
    queue = next(r for r in build_plan(t) if r.section == "queues")
    extended = Resource("queues", queue.label, (*queue.create, "--max-burst-size=25"))
    with pytest.raises(TerraformExportError, match="does not map --max-burst-size"):
        translate(Module(symbolic_target(t), t), extended)
    with pytest.raises(TerraformExportError, match="no Terraform mapping for the plan step `gcloud pubsub topics"):
        translate(Module(symbolic_target(t), t), Resource("queues", "topic", ("pubsub", "topics", "create", "t")))


def test_cli_writes_the_module_and_names_the_inputs_to_set(tmp_path: Path) -> None:
    lines: list[str] = []
    status = main(["export", "--format", "terraform", str(tmp_path / "tf"), "--config", str(COMPLETE),
                   "--project", PROJECT], out=lines.append)
    assert status == 0 and (tmp_path / "tf" / "queues.tf").exists() and (tmp_path / "tf" / "dashboard.json").exists()
    # The CLI stages the source and zips it beside the module: only the bucket and the image are inputs.
    assert (tmp_path / "tf" / "function-source.zip").exists()
    assert lines[1].startswith("Set before terraform apply (no default): source_bucket, checkout_image")
    assert main(["export", str(tmp_path / "tf")], out=lines.append) == 2
    assert lines[-1] == "ordertasks deploy export: usage: ordertasks deploy export --format terraform DIR"


def test_cli_refuses_like_plan_when_a_setting_is_missing(tmp_path: Path) -> None:
    lines: list[str] = []
    assert main(["export", "--format", "terraform", str(tmp_path / "tf")], out=lines.append) == 2
    assert lines[0].startswith("ordertasks deploy export: refusing") and not (tmp_path / "tf").exists()


def test_export_replaces_its_own_files_and_refuses_anyone_elses(tmp_path: Path) -> None:
    (tmp_path / "stale.tf").write_text(write_terraform(target(), tmp_path).files[0].read_text(), encoding="utf-8")
    write_terraform(target(), tmp_path)
    assert not (tmp_path / "stale.tf").exists()
    (tmp_path / "main.tf").write_text('resource "null_resource" "mine" {}\n', encoding="utf-8")
    with pytest.raises(TerraformExportError, match="holds main.tf, which the export did not write"):
        write_terraform(target(), tmp_path)



# --- a shop's catalog, exported from its own project --------------------------------------

SHOP_DATABASE = "shop-orders"


@pytest.fixture
def shop_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Target, Path]:
    """``ordertasks deploy export`` run in a shop's project (a catalog extending the shipped one,
    no checkout, no warehouse, a named Firestore database), and the target its plan is made for."""
    shop = write_shop(tmp_path / "shop", SHOP_CATALOG.replace("[cloud]\n", f'[cloud]\nfirestore_database = "{SHOP_DATABASE}"\n'))
    monkeypatch.chdir(shop)
    monkeypatch.syspath_prepend(str(shop))      # the shop's kind module imports, as with PYTHONPATH=.
    lines: list[str] = []
    status = main(["export", "--format", "terraform", "tf", "--config", "tasks.toml", "--project", PROJECT,
                   "--region", REGION], out=lines.append)
    assert status == 0, lines
    digest = source_digest(shop / ".ordertasks" / "deploy" / "source")
    return make_target(load_catalog(shop / "tasks.toml"), PROJECT, REGION, source_digest=digest), shop / "tf"


def test_a_shop_export_equals_its_plan_resource_for_resource(shop_export: tuple[Target, Path]) -> None:
    t, directory = shop_export
    want, have = planned(build_plan(t)), exported(Parsed(directory))
    assert want == have, {"planned only": want - have, "exported only": have - want}


def test_a_shop_export_has_no_checkout_and_uses_the_named_database(shop_export: tuple[Target, Path]) -> None:
    _, directory = shop_export
    parsed = Parsed(directory)
    types = {address.split(".")[-2] for address in parsed.blocks}
    assert "google_cloud_run_v2_service" not in types and "checkout_image" not in parsed.variables
    assert not [a for a in parsed.blocks if "stripe" in a]
    [database] = [b for a, b in parsed.blocks.items() if a.startswith("google_firestore_database.")]
    assert parsed.value(database["name"]) == SHOP_DATABASE
    conditions = [one(b["condition"]) for a, b in parsed.blocks.items() if a.startswith("google_project_iam_member.")]
    assert conditions and all(parsed.value(c["expression"]).endswith(f'/databases/{SHOP_DATABASE}"') for c in conditions)


def test_a_shop_export_uploads_the_staged_source(shop_export: tuple[Target, Path]) -> None:
    _, directory = shop_export
    parsed = Parsed(directory)
    [source] = [b for a, b in parsed.blocks.items() if a.startswith("google_storage_bucket_object.")]
    assert source["source"] == '"${path.module}/function-source.zip"' and "source_archive" not in parsed.variables
    names = zipfile.ZipFile(directory / "function-source.zip").namelist()
    assert {"main.py", "requirements.txt", "tasks.toml", "shop_kinds.py"} <= set(names)
    assert sorted(names) == sorted(source_files(directory.parent / ".ordertasks" / "deploy" / "source"))


def test_checkov_finds_nothing_unjustified_in_a_shop_export(shop_export: tuple[Target, Path]) -> None:
    assert_checkov_clean(shop_export[1])
