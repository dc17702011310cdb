"""The deployment plan: every resource, in order, built from ``infra/tasks.toml``.

Each ``section_*`` function returns the resources of one section (see ``SECTIONS``); this
module holds the project-wide ones, the queues and the handler; ``_services`` the
maintenance function and the checkout service, ``_access`` secrets and IAM, ``_data`` the
Firestore TTLs and indexes, ``_jobs`` the Scheduler jobs, ``_monitoring`` metrics, alerts
and the dashboard.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from ordertasks.infra.config import QueueConfig

from ordertasks.infra.deploy._model import (SECTIONS, Resource, Setting, duration, same_duration, same_subset,
                                 with_settings)
from ordertasks.infra.deploy._source import STAGED_CATALOG
from ordertasks.infra.deploy._target import (ACCOUNT_IDS, APIS, COLLECTIONS, DEFAULT_SCHEDULES, DISPLAY_NAMES, Target,
                                             make_target)

# --- sections -----------------------------------------------------------------------------

def _services_enabled(document: Any) -> set[str]:
    return {str(item.get("name", "")).rsplit("/", 1)[-1] for item in document or []}


def section_apis(t: Target) -> list[Resource]:
    """One resource: the set of enabled APIs; ``apply`` enables only the missing ones."""
    wanted = [f"{api}.googleapis.com" for api in APIS]
    project = f"--project={t.project}"

    def missing(document: Any) -> list[str]:
        return [api for api in wanted if api not in _services_enabled(document)]
    return [Resource("apis", "APIs " + ", ".join(APIS), ("services", "enable", *wanted, project),
                     ("services", "list", "--enabled", "--format=json", project), missing,
                     lambda names: ("services", "enable", *names, project))]


def section_accounts(t: Target) -> list[Resource]:
    """The service accounts: checkout (and maintenance), dispatcher and scheduler (OIDC identities), handler."""
    return [_account(t, role) for role in DISPLAY_NAMES]


def _account(t: Target, role: str) -> Resource:
    project, email = f"--project={t.project}", t.email(role)
    display = t.display_name(role)
    name = Setting("displayName", "displayName", display, (f"--display-name={display}",))
    return with_settings(
        "accounts", f"service account {email}", settings=[name],
        create=("iam", "service-accounts", "create", t.account_id(role), project),
        update=("iam", "service-accounts", "update", email, project),
        describe=("iam", "service-accounts", "describe", email, "--format=json", project),
        delete=("iam", "service-accounts", "delete", email, "--quiet", project))


def section_bucket(t: Target) -> list[Resource]:
    """The invoice bucket: uniform bucket-level access, public access prevented."""
    url, project = f"gs://{t.bucket}", f"--project={t.project}"
    settings = [Setting("uniformBucketLevelAccess", "uniform_bucket_level_access", True,
                        ("--uniform-bucket-level-access",)),
                Setting("publicAccessPrevention", "public_access_prevention", "enforced",
                        ("--public-access-prevention",))]
    return [with_settings(
        "bucket", f"bucket {url}", settings=settings,
        create=("storage", "buckets", "create", url, f"--location={t.region}", project),
        update=("storage", "buckets", "update", url, project),
        describe=("storage", "buckets", "describe", url, "--format=json", project),
        delete=("storage", "rm", "--recursive", url, project), holds_data=True)]


def section_firestore(t: Target) -> list[Resource]:
    """The Firestore database (``[cloud] firestore_database``, ``(default)`` unless named) in Native
    mode. ``apply`` describes it first and creates it only when absent, never over an existing one;
    destroy deletes only our collections."""
    project, database = f"--project={t.project}", f"--database={t.firestore_database}"
    return [Resource(
        "firestore", f"Firestore database {t.firestore_database}",
        ("firestore", "databases", "create", database, f"--location={t.region}", "--type=firestore-native", project),
        ("firestore", "databases", "describe", database, "--format=json", project),
        delete=("firestore", "bulk-delete", "--collection-ids=" + ",".join(COLLECTIONS), database, "--quiet",
                project), holds_data=True)]


def _number(value: float) -> str:
    return f"{value:g}"


def queue_settings(q: QueueConfig) -> list[Setting]:
    """The queue fields we own. ``maxBurstSize`` is absent: in v2 it is output only."""
    return [
        Setting("maxDispatchesPerSecond", "rateLimits.maxDispatchesPerSecond", q.max_dispatches_per_second,
                (f"--max-dispatches-per-second={_number(q.max_dispatches_per_second)}",)),
        Setting("maxConcurrentDispatches", "rateLimits.maxConcurrentDispatches", q.max_concurrent_dispatches,
                (f"--max-concurrent-dispatches={q.max_concurrent_dispatches}",)),
        Setting("maxAttempts", "retryConfig.maxAttempts", q.max_attempts, (f"--max-attempts={q.max_attempts}",)),
        Setting("minBackoff", "retryConfig.minBackoff", duration(q.min_backoff_seconds),
                (f"--min-backoff={duration(q.min_backoff_seconds)}",), same_duration),
        Setting("maxBackoff", "retryConfig.maxBackoff", duration(q.max_backoff_seconds),
                (f"--max-backoff={duration(q.max_backoff_seconds)}",), same_duration),
        Setting("maxDoublings", "retryConfig.maxDoublings", q.max_doublings, (f"--max-doublings={q.max_doublings}",)),
        Setting("maxRetryDuration", "retryConfig.maxRetryDuration", duration(q.max_retry_duration_seconds),
                (f"--max-retry-duration={duration(q.max_retry_duration_seconds)}",), same_duration),
    ]


def routing_settings(t: Target) -> list[Setting]:
    """Queue-level HTTP target: every task goes to the handler with the dispatcher's token.

    With the override a task created with the dispatcher identity cannot be pointed
    anywhere else, and the token's audience is always the handler's own URL.
    """
    url = urlsplit(t.handler_url)
    uri = {"scheme": url.scheme.upper(), "host": url.hostname, "pathOverride": {"path": url.path or "/"},
           "uriOverrideEnforceMode": "ALWAYS"}
    flag = f"scheme:{url.scheme},host:{url.hostname},path:{url.path or '/'},mode:always"
    if url.port:
        uri["port"], flag = str(url.port), flag + f",port:{url.port}"
    oidc = {"serviceAccountEmail": t.email("dispatcher"), "audience": t.handler_url}
    return [
        Setting("uriOverride", "httpTarget.uriOverride", uri, (f"--http-uri-override={flag}",), same_subset),
        Setting("httpMethod", "httpTarget.httpMethod", "POST", ("--http-method-override=post",)),
        Setting("oidcToken", "httpTarget.oidcToken", oidc,
                (f"--http-oidc-service-account-email-override={oidc['serviceAccountEmail']}",
                 f"--http-oidc-token-audience-override={t.handler_url}"), same_subset),
    ]


def section_queues(t: Target) -> list[Resource]:
    """One queue per side effect, with the catalog's rate and retry settings, pinned to the handler."""
    return [_queue(t, q) for q in t.catalog.queues.values()]


def _queue(t: Target, q: QueueConfig) -> Resource:
    where = (f"--location={t.region}", f"--project={t.project}")
    return with_settings(
        "queues", f"queue {q.name}", settings=[*queue_settings(q), *routing_settings(t)],
        create=("tasks", "queues", "create", q.name, *where),
        update=("tasks", "queues", "update", q.name, *where),
        describe=("tasks", "queues", "describe", q.name, *where, "--format=json"),
        delete=("tasks", "queues", "delete", q.name, *where, "--quiet"))


def system_env(t: Target) -> dict[str, str]:
    """What every deployable reads: the backend, project and region, the staged catalog (relative to
    the source root, the function's working directory), the Firestore database, the handler URL."""
    tracing = {"OTEL_TRACES_EXPORTER": "gcp_trace"} if t.cloud.tracing else {}     # [cloud] tracing = true
    return {"ORDERTASKS_BACKEND": "cloud", "ORDERTASKS_PROJECT": t.project, "ORDERTASKS_LOCATION": t.region,
            "ORDERTASKS_CONFIG": STAGED_CATALOG, "ORDERTASKS_FIRESTORE_DATABASE": t.firestore_database,
            "ORDERTASKS_HANDLER_URL": t.handler_url, **tracing}


def handler_env(t: Target) -> dict[str, str]:
    """The handler's ``ORDERTASKS_*`` variables that follow from the deployment itself."""
    return {**system_env(t), "ORDERTASKS_INVOICE_BUCKET": t.bucket, "ORDERTASKS_OIDC_ALLOWED_EMAILS": t.email("dispatcher")}


def deployed_env(t: Target) -> dict[str, dict[str, str]]:
    """Each deployable's plain environment: what the deployment fixes plus the ``[cloud]`` settings
    (``[cloud.env]`` goes to the handler). The checkout only when it is deployed."""
    from ordertasks.infra.deploy._services import checkout_env, maintenance_env

    env = {"handler": {**handler_env(t), **t.cloud.env_for("handler")}, "maintenance": maintenance_env(t)}
    if t.checkout_deployed:
        env["checkout"] = {**checkout_env(t), **t.cloud.env_for("checkout")}
    return env


def same_secrets(actual: Any, want: Any) -> bool:
    """Every wanted ``{key, secret, version}`` mount is among the function's secret variables."""
    have = {(e.get("key"), str(e.get("secret", "")).rsplit("/", 1)[-1], str(e.get("version")))
            for e in actual or []}
    return all((w["key"], w["secret"], w["version"]) in have for w in want)


def env_flag(env: dict[str, str]) -> str:
    """``--update-env-vars=K=V,...``; with gcloud's ``^|^`` delimiter when a value holds a comma."""
    pairs = [f"{k}={v}" for k, v in env.items()]
    if any("," in value for value in env.values()):
        return "--update-env-vars=^|^" + "|".join(pairs)
    return "--update-env-vars=" + ",".join(pairs)


def env_setting(path: str, env: dict[str, str]) -> Setting:
    """``--update-env-vars``: ours are set, an operator's own variables are kept."""
    return Setting("environmentVariables", path, env, (env_flag(env),), same_subset)


def secrets_setting(t: Target, deployable: str) -> list[Setting]:
    """``--set-secrets`` for the Secret Manager references ``deployable`` reads (none: no flag)."""
    refs = t.cloud.secrets_for(deployable)
    want = [{"key": r.variable, "secret": r.secret, "version": r.version} for r in refs]
    return [Setting("secretEnvironmentVariables", "serviceConfig.secretEnvironmentVariables", want,
                    ("--set-secrets=" + ",".join(r.mount for r in refs),), same_secrets)] if refs else []


def sizing_settings(t: Target, sizing: dict[str, Any]) -> list[Setting]:
    """Instances, concurrency, memory, CPU and timeout of a gen2 function."""
    settings = [
        Setting("maxInstanceCount", "serviceConfig.maxInstanceCount", int(sizing.get("max_instances", 20)),
                (f"--max-instances={int(sizing.get('max_instances', 20))}",)),
        Setting("maxInstanceRequestConcurrency", "serviceConfig.maxInstanceRequestConcurrency",
                int(sizing.get("concurrency", 1)), (f"--concurrency={int(sizing.get('concurrency', 1))}",)),
        Setting("availableMemory", "serviceConfig.availableMemory", str(sizing.get("memory", "512Mi")),
                (f"--memory={sizing.get('memory', '512Mi')}",)),
        Setting("timeoutSeconds", "serviceConfig.timeoutSeconds", int(sizing.get("timeout_seconds", 300)),
                (f"--timeout={int(sizing.get('timeout_seconds', 300))}s",)),
    ]
    cpu = sizing.get("cpu")
    if cpu:
        settings.insert(3, Setting("availableCpu", "serviceConfig.availableCpu", str(cpu), (f"--cpu={cpu}",)))
    return settings


def gen2_settings(t: Target, entry: str, role: str, env: dict[str, str], sizing: dict[str, Any],
                  deployable: str) -> list[Setting]:
    """The fields we own on one private, internal-ingress gen2 function of our source."""
    return [
        Setting("runtime", "buildConfig.runtime", t.runtime, (f"--runtime={t.runtime}",)),
        Setting("entryPoint", "buildConfig.entryPoint", entry, (f"--entry-point={entry}",)),
        Setting("ingressSettings", "serviceConfig.ingressSettings", "ALLOW_INTERNAL_ONLY",
                ("--ingress-settings=internal-only",)),
        Setting("serviceAccountEmail", "serviceConfig.serviceAccountEmail", t.email(role),
                (f"--service-account={t.email(role)}",)),
        *sizing_settings(t, sizing),
        env_setting("serviceConfig.environmentVariables", env),
        *secrets_setting(t, deployable),
        Setting("source", "labels.ordertasks-source", t.source_digest,
                (f"--update-labels=ordertasks-source={t.source_digest}",)),
    ]


def function_settings(t: Target) -> list[Setting]:
    """The handler function's fields, each with the ``gcloud functions deploy`` flag that sets it."""
    sizing = {**t.catalog.handler, "cpu": t.cpu}
    return gen2_settings(t, "handle_task", "handler", deployed_env(t)["handler"], sizing, "handler")


def gen2_function(t: Target, section: str, name: str, settings: list[Setting]) -> Resource:
    """A gen2 HTTP function deployed from the staged source; ``deploy`` also updates it."""
    where = (f"--region={t.region}", f"--project={t.project}")
    return with_settings(
        section, f"function {name}", settings=settings, update=None,
        create=("functions", "deploy", name, "--gen2", *where, f"--source={t.source_dir}", "--trigger-http",
                "--no-allow-unauthenticated"),
        describe=("functions", "describe", name, "--gen2", *where, "--format=json"),
        delete=("functions", "delete", name, "--gen2", *where, "--quiet"))


def section_function(t: Target) -> list[Resource]:
    """The handler: a private, internal-ingress gen2 HTTP function running as the handler SA."""
    return [gen2_function(t, "function", t.catalog.handler_function, function_settings(t))]


def _builders() -> dict[str, Callable[[Target], list[Resource]]]:
    from ordertasks.infra.deploy import _access, _data, _jobs, _monitoring, _services

    return {"apis": section_apis, "accounts": section_accounts, "secrets": _access.section_secrets,
            "bucket": section_bucket, "firestore": section_firestore, "queues": section_queues,
            "function": section_function, "maintenance": _services.section_maintenance,
            "checkout": _services.section_checkout, "iam": _access.section_iam, "ttl": _data.section_ttl,
            "indexes": _data.section_indexes, "scheduler": _jobs.section_scheduler,
            "monitoring": _monitoring.section_monitoring}


def build_plan(t: Target, only: Sequence[str] = ()) -> list[Resource]:
    """Every resource of the selected sections (all when ``only`` is empty), in plan order."""
    builders = _builders()
    assert tuple(builders) == SECTIONS
    return [r for section in SECTIONS if not only or section in only for r in builders[section](t)]


__all__ = ["ACCOUNT_IDS", "APIS", "COLLECTIONS", "DEFAULT_SCHEDULES", "DISPLAY_NAMES", "Target",
           "build_plan", "deployed_env", "function_settings", "handler_env", "make_target", "queue_settings",
           "routing_settings", "system_env"]
