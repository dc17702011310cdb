"""Where and what to deploy: the catalog, the project's names and URLs, the cloud settings.

``make_target`` resolves everything the plan needs once; command-line values win over the
catalog. The deployables' source is staged (``_source``) under ``staging_dir``; its digest is a
label on every deployable so ``apply`` redeploys on change. What is deployed follows the
catalog: the checkout service only when the catalog has a ``[checkout]`` table and ``[cloud]
checkout`` is not false.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ordertasks.handlers.config import catalog_document
from ordertasks.infra.config import Catalog

from ordertasks.infra.deploy._cloud import CloudConfig, load_cloud, without_checkout
from ordertasks.infra.deploy._source import DEFAULT_STAGING, MONITORING, SOURCE

APIS = ("cloudtasks", "cloudfunctions", "run", "cloudbuild", "artifactregistry", "firestore",
        "storage", "cloudscheduler", "iam", "secretmanager", "logging", "monitoring")
"""APIs the deployment uses. Eventarc is left out: an HTTP-triggered gen2 function needs none."""

COLLECTIONS = ("orders", "outbox", "checkout_keys", "idempotency", "failed_tasks",
               "analytics_orders", "analytics_daily")
"""Firestore collections the app writes: removed only by ``destroy --delete-data``."""

DISPLAY_NAMES = {
    "checkout": "ordertasks checkout API and maintenance (enqueues tasks)",
    "dispatcher": "ordertasks task dispatcher (OIDC identity of Cloud Tasks)",
    "handler": "ordertasks task handler (runtime identity of the function)",
    "scheduler": "ordertasks scheduler (OIDC identity of the Cloud Scheduler jobs)",
}
PRODUCER_DISPLAY_NAME = "ordertasks producer: maintenance and the shop's app (enqueues tasks)"
"""The checkout role's account when no checkout service is deployed: the shop's own app may run as it."""
ACCOUNT_IDS = {role: f"ordertasks-{role}" for role in DISPLAY_NAMES}
"""Service account ids when ``[service_accounts]`` does not name one."""
DEFAULT_SCHEDULES = {"reconcile": "*/5 * * * *", "sweep": "*/10 * * * *"}
"""Reconcile often (it only finds work after an outage); sweep after people triage."""
PROJECT_NUMBER = "PROJECT_NUMBER"
"""Stands for the project number in a printed plan; ``apply`` looks the number up."""


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
    source_digest: str = "unstaged"
    cloud: CloudConfig = field(default_factory=CloudConfig)
    maintenance_function: str = "ordertasks-maintenance"
    checkout_service: str = "ordertasks-checkout"
    allow_unauthenticated: bool = False
    project_number: str | None = None
    staging_dir: str = DEFAULT_STAGING

    @property
    def source_dir(self) -> str:
        """What gcloud uploads for the functions and the checkout (``--source``), as the plan names it."""
        return str(PurePosixPath(self.staging_dir) / SOURCE)

    @property
    def monitoring_dir(self) -> str:
        """Where the staged metric and dashboard definitions are, as the plan names it."""
        return str(PurePosixPath(self.staging_dir) / MONITORING)

    @property
    def checkout_deployed(self) -> bool:
        """Whether our checkout service is part of this deployment (see the module docstring)."""
        return self.catalog.checkout and self.cloud.checkout

    @property
    def firestore_database(self) -> str:
        """The Firestore database every deployable uses (``[cloud] firestore_database``)."""
        return self.cloud.firestore_database

    def display_name(self, role: str) -> str:
        """The display name of the service account playing ``role``."""
        if role == "checkout" and not self.checkout_deployed:
            return PRODUCER_DISPLAY_NAME
        return DISPLAY_NAMES[role]

    @property
    def maintenance_url(self) -> str:
        """The maintenance function's URL: the Scheduler jobs' target and token audience."""
        return f"https://{self.region}-{self.project}.cloudfunctions.net/{self.maintenance_function}"

    @property
    def checkout_service_url(self) -> str:
        """The checkout's URL, the audience of its ``/internal/*``: ``--checkout-url``, else Cloud
        Run's deterministic ``https://SERVICE-PROJECT_NUMBER.REGION.run.app``."""
        if self.checkout_url:
            return self.checkout_url
        return f"https://{self.checkout_service}-{self.project_number or PROJECT_NUMBER}.{self.region}.run.app"

    def account_id(self, role: str) -> str:
        """The id of the service account playing ``role`` (catalog first, then ours)."""
        return str(self.catalog.service_accounts.get(role) or ACCOUNT_IDS[role])

    def email(self, role: str) -> str:
        """Email of the service account playing ``role`` in this project."""
        return f"{self.account_id(role)}@{self.project}.iam.gserviceaccount.com"

    def member(self, role: str) -> str:
        """IAM principal of the service account playing ``role``."""
        return "serviceAccount:" + self.email(role)


def _extra_toml(catalog: Catalog) -> dict[str, Any]:
    """The tables ``infra.config`` does not model: ``[scheduler]`` and extra ``[handler]`` keys."""
    # A catalog built in code (tests, a shop's script) has no file behind it: no extra tables.
    return catalog_document(catalog.source) if Path(catalog.source).is_file() else {}


def _default_bucket(catalog: Catalog, project: str) -> str:
    # Bucket names are global: the toml's placeholder project prefix follows --project.
    name = catalog.invoice_bucket
    if name.startswith(catalog.project + "-"):
        return project + name[len(catalog.project):]
    return name


def make_target(catalog: Catalog, project: str | None = None, region: str | None = None, *,
                bucket: str | None = None, handler_url: str | None = None,
                checkout_url: str | None = None, sets: Sequence[str] = (),
                secrets: Sequence[str] = (), notification_channel: str | None = None,
                allow_unauthenticated: bool = False, project_number: str | None = None,
                staging_dir: str | Path = DEFAULT_STAGING, source_digest: str = "unstaged") -> Target:
    """Resolve everything the plan needs; command-line values win over the toml."""
    project, region = project or catalog.project, region or catalog.region
    extra = _extra_toml(catalog)
    cloud = load_cloud(extra.get("cloud", {}), sets, secrets, notification_channel)
    if not (catalog.checkout and cloud.checkout):
        cloud = without_checkout(cloud)
    scheduler, handler, names = extra.get("scheduler", {}), extra.get("handler", {}), extra.get("project", {})
    url = handler_url or f"https://{region}-{project}.cloudfunctions.net/{catalog.handler_function}"
    return Target(
        catalog, project, region, bucket or _default_bucket(catalog, project), url,
        (checkout_url or scheduler.get("checkout_url") or "").rstrip("/") or None,
        {job: scheduler.get(f"{job}_schedule", cron) for job, cron in DEFAULT_SCHEDULES.items()},
        scheduler.get("time_zone", "Etc/UTC"), handler.get("runtime", "python312"),
        # A gen2 function serving more than one request at a time needs at least one vCPU.
        handler.get("cpu") or ("1" if int(catalog.handler.get("concurrency", 1)) > 1 else None),
        source_digest, cloud,
        names.get("maintenance_function", "ordertasks-maintenance"), names.get("checkout_service", "ordertasks-checkout"),
        allow_unauthenticated, project_number, Path(staging_dir).as_posix())
