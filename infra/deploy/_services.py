"""The maintenance function and the checkout service, both from the handler's source.

- **maintenance**: ``run_maintenance`` (reconcile and sweep) as its own private gen2
  function, so Cloud Scheduler gets an invoker grant on it alone and the dispatcher none.
  It runs as the checkout's service account: it does exactly what the checkout does
  (read orders and the outbox, enqueue tasks with the dispatcher's identity), so sharing
  that identity adds no privilege to either, and it accepts only the scheduler's token.
- **checkout**: the Flask app on Cloud Run (``gcloud run deploy --source <staged source>``) under
  gunicorn, private unless ``--allow-unauthenticated`` says a storefront calls it directly. Only
  when the catalog deploys it (``Target.checkout_deployed``): a shop that calls the library from
  its own app has none, and no Stripe setting is asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ordertasks.infra.deploy._engine import DeployError, Runner
from ordertasks.infra.deploy._model import Resource, Setting, lookup, render, same, same_subset, with_settings
from ordertasks.infra.deploy._plan import env_setting, gen2_function, gen2_settings, system_env
from ordertasks.infra.deploy._target import Target

GUNICORN = ("--bind=:8080", "--workers=1", "--threads=8",
            "--worker-class=ordertasks.functions.serve.WholeRequestWorker", "--timeout=30",
            "ordertasks.producer.serve:app_from_env()")
"""One worker, 8 app threads: Cloud Run scales out by instances. The worker reads each request
whole (head and body, within 10 s) in an event loop before a thread takes it, so clients that
send slowly cannot hold the threads; ``--timeout`` restarts a worker whose loop stalls. The
app factory runs the cloud start-up check."""
CHECKOUT_SIZING = {"max_instances": 20, "concurrency": 80, "memory": "512Mi", "timeout_seconds": 60}
MAINTENANCE_SIZING = {"max_instances": 1, "concurrency": 1, "memory": "512Mi", "timeout_seconds": 540}


def maintenance_env(t: Target) -> dict[str, str]:
    """The maintenance function's variables: where tasks go, and whose token it accepts."""
    return {**system_env(t), "ORDERTASKS_MAINTENANCE_URL": t.maintenance_url,
            "ORDERTASKS_OIDC_ALLOWED_EMAILS": t.email("scheduler")}


def checkout_env(t: Target) -> dict[str, str]:
    """The checkout's variables that follow from the deployment itself, its own URL (the
    ``/internal/*`` token audience) among them."""
    return {**system_env(t), "ORDERTASKS_CHECKOUT_URL": t.checkout_service_url}


def with_project_number(t: Target, run: Runner) -> Target:
    """``t`` with its project number, which the checkout's Cloud Run URL holds (nothing to
    look up when ``--checkout-url`` names the URL)."""
    if t.checkout_url or t.project_number or not t.checkout_deployed:
        return t
    command = ("projects", "describe", t.project, "--format=value(projectNumber)")
    result = run(command)
    number = (result.stdout or "").strip()
    if result.returncode != 0 or not number.isdigit():
        raise DeployError(f"cannot read the number of project {t.project} (`{render(command)}`: "
                          f"{(result.stderr or 'no number').strip().splitlines()[-1][:200]}), which the checkout's "
                          "URL holds; pass --checkout-url with the checkout service's https URL")
    return replace(t, project_number=number)


def section_maintenance(t: Target) -> list[Resource]:
    """``run_maintenance``: private, internal ingress, the scheduler's token only."""
    sizing = {**MAINTENANCE_SIZING, **dict(t.catalog.handler.get("maintenance", {}) or {})}
    settings = gen2_settings(t, "run_maintenance", "checkout", maintenance_env(t), sizing, "maintenance")
    return [gen2_function(t, "maintenance", t.maintenance_function, settings)]


def _container(document: Any) -> Any:
    containers = lookup(document, "spec.template.spec.containers") or [{}]
    return containers[0]


def _plain_env(document: Any) -> dict[str, Any]:
    return {e.get("name"): e.get("value") for e in _container(document).get("env", []) if "value" in e}


def _secret_env(document: Any) -> set[tuple[str, str, str]]:
    refs = {e.get("name"): lookup(e, "valueFrom.secretKeyRef") for e in _container(document).get("env", [])}
    return {(name, ref.get("name"), ref.get("key")) for name, ref in refs.items() if ref}


def run_setting(name: str, want: Any, flag: str, read: Callable[[Any], Any],
                equal: Callable[[Any, Any], bool] = same) -> Setting:
    """A Cloud Run setting, read from the Knative service document by ``read``."""
    return Setting(name, "", want, (flag,), equal, read)


def _contains(actual: Any, want: Any) -> bool:
    return bool(want <= actual) if isinstance(want, set) else same_subset(actual, want)


def checkout_settings(t: Target) -> list[Setting]:
    """What we own on the checkout service, each with its ``gcloud run deploy`` flag."""
    env = {**checkout_env(t), **t.cloud.env_for("checkout")}
    refs = t.cloud.secrets_for("checkout")
    settings = [
        run_setting("serviceAccountName", t.email("checkout"), f"--service-account={t.email('checkout')}",
                    lambda d: lookup(d, "spec.template.spec.serviceAccountName")),
        run_setting("command", ["gunicorn"], "--command=gunicorn", lambda d: _container(d).get("command")),
        run_setting("args", list(GUNICORN), "--args=" + ",".join(GUNICORN), lambda d: _container(d).get("args")),
        run_setting("maxScale", str(CHECKOUT_SIZING["max_instances"]), f"--max-instances={CHECKOUT_SIZING['max_instances']}",
                    lambda d: (lookup(d, "spec.template.metadata.annotations") or {}).get("autoscaling.knative.dev/maxScale")),
        run_setting("environmentVariables", env, env_setting("", env).flags[0], _plain_env, _contains),
        run_setting("source", t.source_digest, f"--update-labels=ordertasks-source={t.source_digest}",
                    lambda d: (lookup(d, "metadata.labels") or {}).get("ordertasks-source")),
    ]
    if refs:
        settings.insert(5, run_setting("secrets", {(r.variable, r.secret, r.version) for r in refs},
                                       "--set-secrets=" + ",".join(r.mount for r in refs), _secret_env, _contains))
    return settings


def section_checkout(t: Target) -> list[Resource]:
    """The checkout API on Cloud Run, built from the same source as the functions (when deployed)."""
    if not t.checkout_deployed:
        return []
    name, where = t.checkout_service, (f"--region={t.region}", f"--project={t.project}")
    access = "--allow-unauthenticated" if t.allow_unauthenticated else "--no-allow-unauthenticated"
    return [with_settings(
        "checkout", f"Cloud Run service {name}", settings=checkout_settings(t), update=None,
        create=("run", "deploy", name, f"--source={t.source_dir}", *where, access),
        describe=("run", "services", "describe", name, *where, "--format=json"),
        delete=("run", "services", "delete", name, *where, "--quiet"))]
