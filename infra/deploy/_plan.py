"""The deployment plan: every resource, in order, built from ``infra/tasks.toml``.

Each ``section_*`` function returns the resources of one section (see ``SECTIONS``); the
least-privilege IAM bindings are data (``iam_bindings``) so tests and docs can read them.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.config import REPO_ROOT, Catalog, QueueConfig

from infra.deploy._model import (SECTIONS, Command, Resource, Setting, duration, lookup, same_duration,
                                 same_subset, with_settings)

APIS = ("cloudtasks", "cloudfunctions", "run", "cloudbuild", "artifactregistry", "firestore",
        "storage", "cloudscheduler", "iam")
"""APIs the deployment uses. Eventarc is left out: an HTTP-triggered gen2 function needs none."""

SOURCE_PATHS = ("main.py", "requirements.txt", "ordertasks", "handlers", "functions", "producer",
                "infra/__init__.py", "infra/config.py", "infra/tasks.toml")
"""What the function's source upload holds; ``.gcloudignore`` keeps exactly these (tested)."""

COLLECTIONS = ("orders", "outbox", "checkout_keys", "idempotency", "failed_tasks",
               "analytics_orders", "analytics_daily")
"""Firestore collections the app writes: removed only by ``destroy --delete-data``."""

DISPLAY_NAMES = {
    "checkout": "ordertasks checkout API (enqueues tasks)",
    "dispatcher": "ordertasks task dispatcher (OIDC identity of Cloud Tasks and Scheduler)",
    "handler": "ordertasks task handler (runtime identity of the function)",
}
DEFAULT_SCHEDULES = {"reconcile": "*/5 * * * *", "sweep": "*/10 * * * *"}
"""Reconcile often (it only finds work after an outage); sweep after people triage."""


@dataclass(frozen=True)
class Target:
    """Where and what to deploy: the catalog plus the names and URLs that depend on the project."""

    catalog: Catalog
    project: str
    region: str
    bucket: str
    handler_url: str
    checkout_url: str | None
    schedules: dict[str, str]
    time_zone: str = "Etc/UTC"
    runtime: str = "python312"
    cpu: str | None = None
    source_digest: str = ""

    def email(self, role: str) -> str:
        """Email of the service account playing ``role`` in this project."""
        return self.catalog.service_account_email(role, self.project)

    def member(self, role: str) -> str:
        """IAM principal of the service account playing ``role``."""
        return "serviceAccount:" + self.email(role)


def _extra_toml(catalog: Catalog) -> dict[str, Any]:
    """The tables ``infra.config`` does not model: ``[scheduler]`` and extra ``[handler]`` keys."""
    try:
        return tomllib.loads(Path(catalog.source).read_text(encoding="utf-8"))
    except OSError:
        return {}


def _default_bucket(catalog: Catalog, project: str) -> str:
    # Bucket names are global: the toml's placeholder project prefix follows --project.
    name = catalog.invoice_bucket
    if name.startswith(catalog.project + "-"):
        return project + name[len(catalog.project):]
    return name


def make_target(catalog: Catalog, project: str | None = None, region: str | None = None, *,
                bucket: str | None = None, handler_url: str | None = None,
                checkout_url: str | None = None, root: Path = REPO_ROOT) -> Target:
    """Resolve everything the plan needs; command-line values win over the toml."""
    project, region = project or catalog.project, region or catalog.region
    extra = _extra_toml(catalog)
    scheduler, handler = extra.get("scheduler", {}), extra.get("handler", {})
    url = handler_url or f"https://{region}-{project}.cloudfunctions.net/{catalog.handler_function}"
    return Target(
        catalog, project, region, bucket or _default_bucket(catalog, project), url,
        (checkout_url or scheduler.get("checkout_url") or "").rstrip("/") or None,
        {job: scheduler.get(f"{job}_schedule", cron) for job, cron in DEFAULT_SCHEDULES.items()},
        scheduler.get("time_zone", "Etc/UTC"), handler.get("runtime", "python312"),
        # A gen2 function serving more than one request at a time needs at least one vCPU.
        handler.get("cpu") or ("1" if int(catalog.handler.get("concurrency", 1)) > 1 else None),
        source_digest(root))


def _source_files(root: Path) -> Iterator[Path]:
    for entry in SOURCE_PATHS:
        path = root / entry
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        yield from (p for p in candidates if p.is_file() and "__pycache__" not in p.parts
                    and p.suffix != ".pyc")


def source_files(root: Path = REPO_ROOT) -> list[str]:
    """Repository-relative paths of the files the function's source upload must contain."""
    return [p.relative_to(root).as_posix() for p in _source_files(root)]


def source_digest(root: Path = REPO_ROOT) -> str:
    """A short hash of the uploaded source, kept as a label so ``apply`` redeploys only on change."""
    digest = hashlib.sha256()
    for path in _source_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


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
    """The three service accounts: checkout, dispatcher (OIDC identity), handler (runtime)."""
    return [_account(t, role) for role in ("checkout", "dispatcher", "handler")]


def _account(t: Target, role: str) -> Resource:
    project, email = f"--project={t.project}", t.email(role)
    name = Setting("displayName", "displayName", DISPLAY_NAMES[role], (f"--display-name={DISPLAY_NAMES[role]}",))
    return with_settings(
        "accounts", f"service account {email}", settings=[name],
        create=("iam", "service-accounts", "create", t.catalog.service_accounts[role], project),
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
    """The (default) Firestore database in Native mode; destroy deletes only our collections."""
    project = f"--project={t.project}"
    return [Resource(
        "firestore", "Firestore database (default)",
        ("firestore", "databases", "create", "--database=(default)", f"--location={t.region}",
         "--type=firestore-native", project),
        ("firestore", "databases", "describe", "--database=(default)", "--format=json", project),
        delete=("firestore", "bulk-delete", "--collection-ids=" + ",".join(COLLECTIONS),
                "--database=(default)", "--quiet", project), holds_data=True)]


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


def section_queues(t: Target) -> list[Resource]:
    """One queue per side effect, with the catalog's rate and retry settings."""
    return [_queue(t, q) for q in t.catalog.queues.values()]


def _queue(t: Target, q: QueueConfig) -> Resource:
    where = (f"--location={t.region}", f"--project={t.project}")
    return with_settings(
        "queues", f"queue {q.name}", settings=queue_settings(q),
        create=("tasks", "queues", "create", q.name, *where),
        update=("tasks", "queues", "update", q.name, *where),
        describe=("tasks", "queues", "describe", q.name, *where, "--format=json"),
        delete=("tasks", "queues", "delete", q.name, *where, "--quiet"))


def handler_env(t: Target) -> dict[str, str]:
    """The handler's ``ORDERTASKS_*`` variables that follow from the deployment itself."""
    return {"ORDERTASKS_BACKEND": "cloud", "ORDERTASKS_PROJECT": t.project, "ORDERTASKS_LOCATION": t.region,
            "ORDERTASKS_HANDLER_URL": t.handler_url, "ORDERTASKS_INVOICE_BUCKET": t.bucket,
            "ORDERTASKS_OIDC_ALLOWED_EMAILS": t.email("dispatcher")}


def function_settings(t: Target) -> list[Setting]:
    """The function fields we own, each with the ``gcloud functions deploy`` flag that sets it."""
    h, env = t.catalog.handler, handler_env(t)
    settings = [
        Setting("runtime", "buildConfig.runtime", t.runtime, (f"--runtime={t.runtime}",)),
        Setting("entryPoint", "buildConfig.entryPoint", "handle_task", ("--entry-point=handle_task",)),
        Setting("ingressSettings", "serviceConfig.ingressSettings", "ALLOW_INTERNAL_ONLY",
                ("--ingress-settings=internal-only",)),
        Setting("serviceAccountEmail", "serviceConfig.serviceAccountEmail", t.email("handler"),
                (f"--service-account={t.email('handler')}",)),
        Setting("maxInstanceCount", "serviceConfig.maxInstanceCount", int(h.get("max_instances", 20)),
                (f"--max-instances={int(h.get('max_instances', 20))}",)),
        Setting("maxInstanceRequestConcurrency", "serviceConfig.maxInstanceRequestConcurrency",
                int(h.get("concurrency", 1)), (f"--concurrency={int(h.get('concurrency', 1))}",)),
        Setting("availableMemory", "serviceConfig.availableMemory", str(h.get("memory", "512Mi")),
                (f"--memory={h.get('memory', '512Mi')}",)),
        Setting("timeoutSeconds", "serviceConfig.timeoutSeconds", int(h.get("timeout_seconds", 300)),
                (f"--timeout={int(h.get('timeout_seconds', 300))}s",)),
        Setting("environmentVariables", "serviceConfig.environmentVariables", env,
                ("--update-env-vars=" + ",".join(f"{k}={v}" for k, v in env.items()),), same_subset),
        Setting("source", "labels.ordertasks-source", t.source_digest,
                (f"--update-labels=ordertasks-source={t.source_digest}",)),
    ]
    if t.cpu:
        settings.insert(7, Setting("availableCpu", "serviceConfig.availableCpu", str(t.cpu), (f"--cpu={t.cpu}",)))
    return settings


def section_function(t: Target) -> list[Resource]:
    """The handler: a private, internal-ingress gen2 HTTP function running as the handler SA."""
    name, where = t.catalog.handler_function, (f"--region={t.region}", f"--project={t.project}")
    return [with_settings(
        "function", f"function {name}", settings=function_settings(t), update=None,
        create=("functions", "deploy", name, "--gen2", *where, "--source=.", "--trigger-http",
                "--no-allow-unauthenticated"),
        describe=("functions", "describe", name, "--gen2", *where, "--format=json"),
        delete=("functions", "delete", name, "--gen2", *where, "--quiet"))]


@dataclass(frozen=True)
class Binding:
    """One IAM grant: ``member`` gets ``role`` on one resource (``scope`` + ``target``)."""

    member: str
    role: str
    scope: str
    target: str
    why: str


def iam_bindings(t: Target) -> list[Binding]:
    """Least-privilege grants; project scope only where the service offers nothing narrower."""
    checkout, dispatcher, handler = t.member("checkout"), t.member("dispatcher"), t.member("handler")
    grants = [Binding(checkout, "roles/cloudtasks.enqueuer", "queue", q, "create tasks in this queue")
              for q in t.catalog.queues]
    return grants + [
        Binding(checkout, "roles/iam.serviceAccountUser", "service-account", t.email("dispatcher"),
                "attach the dispatcher's OIDC identity to the tasks it creates (actAs)"),
        Binding(dispatcher, "roles/run.invoker", "run-service", t.catalog.handler_function,
                "Cloud Tasks calls the handler with the dispatcher's OIDC token"),
        Binding(handler, "roles/datastore.user", "project", t.project,
                "idempotency claims, analytics, failed-task log (Firestore IAM is project-wide)"),
        Binding(handler, "roles/storage.objectCreator", "bucket", t.bucket,
                "write invoice PDFs (create only: no read, overwrite or delete)"),
        Binding(checkout, "roles/datastore.user", "project", t.project,
                "orders, outbox, checkout idempotency keys, failed-task sweep"),
    ]


def _iam_command(t: Target, b: Binding, verb: str) -> Command:
    project = f"--project={t.project}"
    prefixes: dict[str, Callable[[], Command]] = {
        "queue": lambda: ("tasks", "queues", verb, b.target, f"--location={t.region}"),
        "service-account": lambda: ("iam", "service-accounts", verb, b.target),
        "run-service": lambda: ("run", "services", verb, b.target, f"--region={t.region}"),
        "project": lambda: ("projects", verb, b.target),
        "bucket": lambda: ("storage", "buckets", verb, f"gs://{b.target}"),
    }
    command = (*prefixes[b.scope](), project)
    if verb == "get-iam-policy":
        return (*command, "--format=json")
    # --condition=None: a project that already has conditional bindings would otherwise prompt.
    condition = ("--condition=None",) if b.scope == "project" else ()
    return (*command, f"--member={b.member}", f"--role={b.role}", *condition)


def has_binding(policy: Any, member: str, role: str) -> bool:
    """True when ``policy`` (get-iam-policy JSON) grants ``role`` to ``member`` unconditionally."""
    return any(entry.get("role") == role and member in entry.get("members", []) and not entry.get("condition")
               for entry in lookup(policy, "bindings") or [])


def _binding_resource(t: Target, b: Binding) -> Resource:
    def granted(policy: Any) -> bool:
        return has_binding(policy, b.member, b.role)
    return Resource("iam", f"{b.role} for {b.member.split(':', 1)[1]} on {b.scope} {b.target}",
                    _iam_command(t, b, "add-iam-policy-binding"), _iam_command(t, b, "get-iam-policy"),
                    delete=_iam_command(t, b, "remove-iam-policy-binding"), exists=granted)


def section_iam(t: Target) -> list[Resource]:
    """Every grant in ``iam_bindings``; adding a binding that exists is a no-op, so apply skips it."""
    return [_binding_resource(t, b) for b in iam_bindings(t)]


def section_ttl(t: Target) -> list[Resource]:
    """Firestore TTL on ``idempotency.expire_at`` so finished claims are deleted after ``ttl_days``."""
    project, field = f"--project={t.project}", ("expire_at", "--collection-group=idempotency")

    def diff(document: Any) -> list[str]:
        return [] if lookup(document, "ttlConfig.state") in ("ACTIVE", "CREATING") else ["ttlConfig"]
    # --async: building the TTL index can take many minutes; apply need not wait for it.
    return [Resource("ttl", "Firestore TTL idempotency.expire_at",
                     ("firestore", "fields", "ttls", "update", *field, "--enable-ttl", "--async", project),
                     ("firestore", "indexes", "fields", "describe", *field, "--format=json", project), diff)]


def section_scheduler(t: Target) -> list[Resource]:
    """Reconcile and sweep jobs calling the checkout service with the dispatcher's OIDC token."""
    if not t.checkout_url:
        return []
    return [_job(t, job) for job in DEFAULT_SCHEDULES]


def _job(t: Target, job: str) -> Resource:
    name, where = f"ordertasks-{job}", (f"--location={t.region}", f"--project={t.project}")
    oidc = {"serviceAccountEmail": t.email("dispatcher"), "audience": t.checkout_url}
    settings = [
        Setting("schedule", "schedule", t.schedules[job], (f"--schedule={t.schedules[job]}",)),
        Setting("timeZone", "timeZone", t.time_zone, (f"--time-zone={t.time_zone}",)),
        Setting("uri", "httpTarget.uri", f"{t.checkout_url}/internal/{job}", (f"--uri={t.checkout_url}/internal/{job}",)),
        Setting("httpMethod", "httpTarget.httpMethod", "POST", ("--http-method=post",)),
        # The audience is the service's base URL, not the full URI: the checkout app checks it.
        Setting("oidcToken", "httpTarget.oidcToken", oidc, (f"--oidc-service-account-email={oidc['serviceAccountEmail']}",
                                                            f"--oidc-token-audience={t.checkout_url}"), same_subset),
    ]
    return with_settings(
        "scheduler", f"scheduler job {name}", settings=settings,
        create=("scheduler", "jobs", "create", "http", name, *where),
        update=("scheduler", "jobs", "update", "http", name, *where),
        describe=("scheduler", "jobs", "describe", name, *where, "--format=json"),
        delete=("scheduler", "jobs", "delete", name, *where, "--quiet"))


BUILDERS: dict[str, Callable[[Target], list[Resource]]] = {
    "apis": section_apis, "accounts": section_accounts, "bucket": section_bucket,
    "firestore": section_firestore, "queues": section_queues, "function": section_function,
    "iam": section_iam, "ttl": section_ttl, "scheduler": section_scheduler,
}
assert tuple(BUILDERS) == SECTIONS


def build_plan(t: Target, only: Sequence[str] = ()) -> list[Resource]:
    """Every resource of the selected sections (all when ``only`` is empty), in plan order."""
    return [r for section in SECTIONS if not only or section in only for r in BUILDERS[section](t)]
