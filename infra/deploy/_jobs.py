"""Cloud Scheduler jobs: reconcile and sweep, calling the maintenance function.

Each job POSTs to ``<maintenance URL>/<job>`` with body ``{"action": "<job>"}`` and an OIDC
token of the scheduler's own service account (never the dispatcher's), audience the
function's base URL, which is what ``run_maintenance`` checks.
"""

from __future__ import annotations

import base64
import json

from ordertasks.infra.deploy._model import Resource, Setting, same_subset, with_settings
from ordertasks.infra.deploy._target import DEFAULT_SCHEDULES, Target


def job_body(job: str) -> str:
    """The JSON body a job sends."""
    return json.dumps({"action": job}, separators=(",", ":"))


def section_scheduler(t: Target) -> list[Resource]:
    """Reconcile and sweep, always: nothing depends on deploying our checkout."""
    return [_job(t, job) for job in DEFAULT_SCHEDULES]


def _job(t: Target, job: str) -> Resource:
    name, where = f"ordertasks-{job}", (f"--location={t.region}", f"--project={t.project}")
    uri, body = f"{t.maintenance_url}/{job}", job_body(job)
    oidc = {"serviceAccountEmail": t.email("scheduler"), "audience": t.maintenance_url}
    settings = [
        Setting("schedule", "schedule", t.schedules[job], (f"--schedule={t.schedules[job]}",)),
        Setting("timeZone", "timeZone", t.time_zone, (f"--time-zone={t.time_zone}",)),
        Setting("uri", "httpTarget.uri", uri, (f"--uri={uri}",)),
        Setting("httpMethod", "httpTarget.httpMethod", "POST", ("--http-method=post",)),
        Setting("body", "httpTarget.body", base64.b64encode(body.encode()).decode(), (f"--message-body={body}",)),
        # The audience is the function's base URL, not the full URI: run_maintenance checks it.
        Setting("oidcToken", "httpTarget.oidcToken", oidc, (f"--oidc-service-account-email={oidc['serviceAccountEmail']}",
                                                            f"--oidc-token-audience={t.maintenance_url}"), same_subset),
    ]
    return with_settings(
        "scheduler", f"scheduler job {name}", settings=settings,
        create=("scheduler", "jobs", "create", "http", name, *where),
        update=("scheduler", "jobs", "update", "http", name, *where),
        describe=("scheduler", "jobs", "describe", name, *where, "--format=json"),
        delete=("scheduler", "jobs", "delete", name, *where, "--quiet"))
