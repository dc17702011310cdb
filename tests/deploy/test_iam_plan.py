"""The IAM part of the plan against a table written here, independently of the code."""

from __future__ import annotations

from ordertasks.infra.deploy import build_plan, iam_bindings, secret_bindings
from tests.deploy.conftest import PROJECT, REGION, target

SA = "serviceAccount:ordertasks-{}@" + PROJECT + ".iam.gserviceaccount.com"
QUEUES = tuple(target().catalog.queues)
DATABASE = f'resource.name=="projects/{PROJECT}/databases/(default)"'

# (member, role, scope, resource): everything the deployment may grant, nothing more.
ALLOWED = {
    *((SA.format("checkout"), "roles/cloudtasks.enqueuer", "queue", q) for q in QUEUES),
    # The maintenance function (the checkout's account) audits: GetTask on its queues, and
    # whether an invoice exists (metadata) for effects done before their done mark.
    *((SA.format("checkout"), "roles/cloudtasks.viewer", "queue", q) for q in QUEUES),
    (SA.format("checkout"), "roles/storage.objectViewer", "bucket", f"{PROJECT}-invoices"),
    (SA.format("checkout"), "roles/iam.serviceAccountUser", "service-account",
     f"ordertasks-dispatcher@{PROJECT}.iam.gserviceaccount.com"),
    (SA.format("dispatcher"), "roles/run.invoker", "run-service", "ordertasks-handler"),
    (SA.format("scheduler"), "roles/run.invoker", "run-service", "ordertasks-maintenance"),
    # Firestore has no per-collection IAM: project-level datastore.user, limited by an IAM
    # condition to ordertasks' database, is the narrowest.
    (SA.format("handler"), "roles/datastore.user", "project", PROJECT),
    (SA.format("checkout"), "roles/datastore.user", "project", PROJECT),
    (SA.format("handler"), "roles/storage.objectCreator", "bucket", f"{PROJECT}-invoices"),
}
# Each secret of tests/deploy/cloud-section.toml, readable by the one account that mounts it.
SECRET_READERS = {("smtp-password", "handler"), ("warehouse-token", "handler"),
                  ("stripe-secret-key", "checkout"), ("stripe-webhook-secret", "checkout")}
FORBIDDEN_ROLES = {"roles/owner", "roles/editor", "roles/viewer", "roles/run.admin", "roles/cloudtasks.admin",
                   "roles/storage.admin", "roles/storage.objectAdmin", "roles/iam.serviceAccountTokenCreator",
                   "roles/datastore.owner", "roles/cloudfunctions.admin"}


def planned() -> set[tuple[str, str, str, str]]:
    return {(b.member, b.role, b.scope, b.target) for b in iam_bindings(target())}


def test_every_grant_is_in_the_table_and_every_table_row_is_granted() -> None:
    assert planned() == ALLOWED


def test_no_broad_roles() -> None:
    assert not {role for _, role, _, _ in planned()} & FORBIDDEN_ROLES


def test_no_project_wide_invoker_or_enqueuer() -> None:
    project_roles = {role for _, role, scope, _ in planned() if scope == "project"}
    assert project_roles == {"roles/datastore.user"}


def test_each_invoker_may_call_one_service_only() -> None:
    invokers = sorted((m, t) for m, role, _, t in planned() if role in ("roles/run.invoker", "roles/cloudfunctions.invoker"))
    assert invokers == [(SA.format("dispatcher"), "ordertasks-handler"), (SA.format("scheduler"), "ordertasks-maintenance")]


def test_scheduler_and_dispatcher_are_distinct_accounts() -> None:
    t = target()
    assert t.email("scheduler") != t.email("dispatcher")


def test_project_wide_firestore_grants_are_limited_to_the_database() -> None:
    project_grants = [b for b in iam_bindings(target()) if b.scope == "project"]
    assert project_grants and all(b.condition == DATABASE for b in project_grants)
    commands = [r.create for r in build_plan(target(), ["iam"]) if "projects" == r.create[0]]
    assert all(f"--condition=expression={DATABASE},title=ordertasks-database" in c for c in commands)


def test_each_secret_is_readable_by_exactly_the_account_that_mounts_it() -> None:
    grants = {(b.target, b.member) for b in secret_bindings(target())}
    assert grants == {(secret, SA.format(role)) for secret, role in SECRET_READERS}
    assert {b.role for b in secret_bindings(target())} == {"roles/secretmanager.secretAccessor"}


def test_iam_commands_name_exactly_the_planned_member_role_and_resource() -> None:
    commands = [r.create for r in build_plan(target(), ["iam"])]
    seen = set()
    for command in commands:
        member = next(p.split("=", 1)[1] for p in command if p.startswith("--member="))
        role = next(p.split("=", 1)[1] for p in command if p.startswith("--role="))
        assert "add-iam-policy-binding" in command
        seen.add((member, role, command[command.index("add-iam-policy-binding") + 1].removeprefix("gs://")))
    assert seen == {(m, r, t) for m, r, _, t in ALLOWED}
    assert all(f"--location={REGION}" in c or f"--region={REGION}" in c
               for c in commands if c[0] in ("tasks", "run"))
