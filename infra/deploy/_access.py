"""Who may do what: Secret Manager access per secret, and the least-privilege IAM table.

What can be narrowed is narrowed to one resource: enqueue on each queue, ``actAs`` on the
dispatcher account only, invoke on one Cloud Run service, create objects in one bucket,
read one secret. What cannot:

- Firestore has no per-collection IAM. ``roles/datastore.user`` is granted on the project
  with an IAM condition limiting it to the one database ordertasks uses
  (``resource.name == "projects/P/databases/(default)"``, or ``[cloud] firestore_database``); collections inside it are not
  separable by IAM (security rules do not apply to server client libraries).
- Cloud Logging and Monitoring need nothing: Cloud Run collects stdout itself.
- Cloud Trace (``[cloud] tracing = true``) has no resource narrower than the project:
  ``roles/cloudtrace.agent`` (write spans only) on the project, for the two accounts that export.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ordertasks.infra.deploy._model import Command, Resource, lookup
from ordertasks.infra.deploy._target import Target

SECRET_ACCESSOR = "roles/secretmanager.secretAccessor"


@dataclass(frozen=True)
class Binding:
    """One IAM grant: ``member`` gets ``role`` on one resource (``scope`` + ``target``)."""

    member: str
    role: str
    scope: str
    target: str
    why: str
    condition: str | None = None  # an IAM condition expression narrowing a project-wide grant


def database_condition(t: Target) -> str:
    """The IAM condition that limits a Firestore grant to ordertasks' database."""
    return f'resource.name=="projects/{t.project}/databases/{t.firestore_database}"'


def iam_bindings(t: Target) -> list[Binding]:
    """Least-privilege grants; project scope only where the service offers nothing narrower.

    The checkout role's account enqueues: it runs the maintenance function, and the checkout
    service when one is deployed. Without our checkout every grant of it stays, because the
    maintenance function needs each one (and the shop's own app, calling the library to
    enqueue, needs the same: run it as this account, or give its account these roles).
    """
    checkout, dispatcher, handler = t.member("checkout"), t.member("dispatcher"), t.member("handler")
    grants = [Binding(checkout, "roles/cloudtasks.enqueuer", "queue", q, "create tasks in this queue")
              for q in t.catalog.queues]
    # The maintenance function runs as the checkout's account: its auditor asks whether an owed
    # effect's task is still in Cloud Tasks (GetTask) before it creates it again.
    grants += [Binding(checkout, "roles/cloudtasks.viewer", "queue", q,
                       "the auditor's GetTask: is an owed effect's task still queued") for q in t.catalog.queues]
    return grants + [
        Binding(checkout, "roles/iam.serviceAccountUser", "service-account", t.email("dispatcher"),
                "attach the dispatcher's OIDC identity to the tasks it creates (actAs)"),
        Binding(dispatcher, "roles/run.invoker", "run-service", t.catalog.handler_function,
                "Cloud Tasks calls the handler with the dispatcher's OIDC token"),
        Binding(t.member("scheduler"), "roles/run.invoker", "run-service", t.maintenance_function,
                "Cloud Scheduler calls the maintenance function with the scheduler's OIDC token"),
        Binding(handler, "roles/datastore.user", "project", t.project,
                "idempotency claims, analytics, failed-task log (ordertasks' database only)", database_condition(t)),
        Binding(handler, "roles/storage.objectCreator", "bucket", t.bucket,
                "write invoice PDFs (create only: no read, overwrite or delete)"),
        Binding(checkout, "roles/storage.objectViewer", "bucket", t.bucket,
                "order status and the auditor read whether an invoice exists (metadata; never written)"),
        Binding(checkout, "roles/datastore.user", "project", t.project,
                "orders, outbox, checkout keys; reconcile and sweep (ordertasks' database only)", database_condition(t)),
        *tracing_bindings(t),
    ]


def tracing_bindings(t: Target) -> list[Binding]:
    """``roles/cloudtrace.agent`` for the accounts that export spans, when ``[cloud] tracing = true``."""
    if not t.cloud.tracing:
        return []
    return [Binding(member, "roles/cloudtrace.agent", "project", t.project, f"export the {who}'s spans to Cloud Trace")
            for member, who in ((t.member("handler"), "handler"), (t.member("checkout"), "checkout and maintenance"))]


def secret_bindings(t: Target) -> list[Binding]:
    """``secretAccessor`` on each secret for the one account that mounts it."""
    grants = {(s.deployable, s.secret): Binding(t.member(s.deployable), SECRET_ACCESSOR, "secret", s.secret,
                                                f"mount {s.variable} in the {s.deployable}") for s in t.cloud.secrets}
    return list(grants.values())


def _condition_flag(b: Binding) -> tuple[str, ...]:
    if b.scope != "project":
        return ()
    if b.condition is None:
        # --condition=None: a project that already has conditional bindings would otherwise prompt.
        return ("--condition=None",)
    return (f"--condition=expression={b.condition},title=ordertasks-database",)


def _iam_command(t: Target, b: Binding, verb: str) -> Command:
    project = f"--project={t.project}"
    prefixes: dict[str, Callable[[], Command]] = {
        "queue": lambda: ("tasks", "queues", verb, b.target, f"--location={t.region}"),
        "service-account": lambda: ("iam", "service-accounts", verb, b.target),
        "run-service": lambda: ("run", "services", verb, b.target, f"--region={t.region}"),
        "project": lambda: ("projects", verb, b.target),
        "bucket": lambda: ("storage", "buckets", verb, f"gs://{b.target}"),
        "secret": lambda: ("secrets", verb, b.target),
    }
    command = (*prefixes[b.scope](), project)
    if verb == "get-iam-policy":
        return (*command, "--format=json")
    return (*command, f"--member={b.member}", f"--role={b.role}", *_condition_flag(b))


def has_binding(policy: Any, member: str, role: str, condition: str | None = None) -> bool:
    """True when ``policy`` (get-iam-policy JSON) grants ``role`` to ``member`` with exactly ``condition``."""
    return any(entry.get("role") == role and member in entry.get("members", [])
               and lookup(entry, "condition.expression") == condition
               for entry in lookup(policy, "bindings") or [])


def binding_resource(t: Target, b: Binding, section: str = "iam") -> Resource:
    """The grant as a resource: present when the policy has it, added otherwise."""
    def granted(policy: Any) -> bool:
        return has_binding(policy, b.member, b.role, b.condition)
    return Resource(section, f"{b.role} for {b.member.split(':', 1)[1]} on {b.scope} {b.target}",
                    _iam_command(t, b, "add-iam-policy-binding"), _iam_command(t, b, "get-iam-policy"),
                    delete=_iam_command(t, b, "remove-iam-policy-binding"), exists=granted)


def section_iam(t: Target) -> list[Resource]:
    """Every grant in ``iam_bindings``; adding a binding that exists is a no-op, so apply skips it."""
    return [binding_resource(t, b) for b in iam_bindings(t)]


def _secret_exists(t: Target, secret: str, version: str) -> Resource:
    project = f"--project={t.project}"
    how = (f"create it first, value from stdin so it never lands in shell history or a plan: "
           f"printf '%s' \"$VALUE\" | gcloud secrets create {secret} --data-file=- {project} "
           f"(or gcloud secrets versions add {secret} --data-file=- for a new version)")
    check = ("secrets", "versions", "describe", version, f"--secret={secret}", "--format=json", project)
    return Resource("secrets", f"secret {secret} version {version} exists (value never read)", check, check,
                    absent=how, exists=lambda d: lookup(d, "state") == "ENABLED")


def section_secrets(t: Target) -> list[Resource]:
    """Each referenced secret must exist (apply never reads or sets a value); then its one grant."""
    checks = {(s.secret, s.version): _secret_exists(t, s.secret, s.version) for s in t.cloud.secrets}
    return [*checks.values(), *(binding_resource(t, b, "secrets") for b in secret_bindings(t))]
