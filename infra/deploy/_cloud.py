"""The catalog's ``[cloud]`` section: settings and secret references of the deployed system.

Plain settings (``[cloud]`` keys, or ``--set KEY=VALUE``) become environment variables of
the deployable that reads them; secrets are never in the catalog, only the Secret Manager
secret that holds each (``[cloud.secrets]`` ``VARIABLE = "secret[:version]"``, or
``--secret``), mounted with ``--set-secrets`` and readable by the one service account that
needs it. ``plan_problems`` runs the same start-up check the deployed handler and checkout
run (``handlers.cloud_readiness``) over the environment they would get, so a plan that
would deploy a half-configured system is refused before it is printed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ordertasks.handlers.cloud_readiness import cloud_problems
from ordertasks.handlers.config import ENV_VARIABLE
from ordertasks.handlers.errors import ConfigurationError
from ordertasks.infra.config import DEFAULT_CATALOG, Settings

PLAIN = {
    # [cloud] key: (variable, deployable that reads it)
    "smtp_host": ("ORDERTASKS_SMTP_HOST", "handler"),
    "smtp_port": ("ORDERTASKS_SMTP_PORT", "handler"),
    "smtp_username": ("ORDERTASKS_SMTP_USERNAME", "handler"),
    "smtp_starttls": ("ORDERTASKS_SMTP_STARTTLS", "handler"),
    "smtp_implicit_tls": ("ORDERTASKS_SMTP_IMPLICIT_TLS", "handler"),
    "mail_from": ("ORDERTASKS_MAIL_FROM", "handler"),
    "warehouse_url": ("ORDERTASKS_WAREHOUSE_URL", "handler"),
    "seller_name": ("ORDERTASKS_SELLER_NAME", "handler"),
    "seller_address": ("ORDERTASKS_SELLER_ADDRESS", "handler"),
    "seller_tax_id": ("ORDERTASKS_SELLER_TAX_ID", "handler"),
    "payments": ("ORDERTASKS_PAYMENTS", "checkout"),
    "allow_test_payments": ("ORDERTASKS_ALLOW_TEST_PAYMENTS", "checkout"),
}
MONITORING_KEYS = ("notification_channel", "retry_rate_threshold", "oldest_task_minutes")
SYSTEM_KEYS = ("checkout", "firestore_database", "tracing")
"""What is deployed: our checkout service (``checkout = false`` leaves it out even when the catalog
has a ``[checkout]`` table), the Firestore database every deployable uses, and whether they
export OpenTelemetry spans to Cloud Trace (``tracing = true``: ``OTEL_TRACES_EXPORTER=gcp_trace``,
the ``ordertasks[tracing]`` extra staged, ``roles/cloudtrace.agent`` for the accounts that export)."""
DEFAULT_DATABASE = "(default)"
DATABASE_ID = re.compile(r"^[a-z][a-z0-9-]{2,61}[a-z0-9]$")
CHECKOUT_SECRETS = ("ORDERTASKS_STRIPE_SECRET_KEY", "ORDERTASKS_STRIPE_WEBHOOK_SECRET")
"""Secrets the checkout reads; every other secret (SMTP, warehouse, webhook tokens) is the handler's."""
SECRET_REF = re.compile(r"^[A-Za-z0-9_-]{1,255}(:(latest|[0-9]+))?$")
CHANNEL = re.compile(r"^projects/[^/]+/notificationChannels/[^/]+$")
PLACEHOLDER = "<from Secret Manager>"


class CloudConfigError(ConfigurationError, ValueError):
    """The ``[cloud]`` section or a ``--set``/``--secret`` flag is malformed; the message says how."""


@dataclass(frozen=True)
class SecretRef:
    """One secret setting: the variable, the Secret Manager secret and version, who reads it."""

    variable: str
    secret: str
    version: str
    deployable: str

    @property
    def mount(self) -> str:
        """The ``--set-secrets`` entry: ``VARIABLE=secret:version``."""
        return f"{self.variable}={self.secret}:{self.version}"


@dataclass(frozen=True)
class CloudConfig:
    """Everything of ``[cloud]``, resolved with the flags."""

    plain: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[SecretRef, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    notification_channel: str | None = None
    retry_rate_threshold: float = 0.2
    oldest_task_minutes: int = 30
    checkout: bool = True
    firestore_database: str = DEFAULT_DATABASE
    tracing: bool = False

    def env_for(self, deployable: str) -> dict[str, str]:
        """Plain variables of ``deployable`` (``[cloud.env]`` goes to the handler)."""
        chosen = {PLAIN[k][0]: v for k, v in self.plain.items() if PLAIN[k][1] == deployable}
        return {**chosen, **(dict(self.env) if deployable == "handler" else {})}

    def secrets_for(self, deployable: str) -> list[SecretRef]:
        """The secrets ``deployable`` mounts."""
        return [s for s in self.secrets if s.deployable == deployable]


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def secret_ref(variable: str, reference: str) -> SecretRef:
    """``VARIABLE`` mounted from ``secret[:version]`` (version ``latest`` by default)."""
    if not ENV_VARIABLE.fullmatch(variable) or not SECRET_REF.match(reference):
        # The reference is not echoed: a mistaken one may be the secret's value itself.
        raise CloudConfigError(f"secret {variable}: not a Secret Manager reference; use VARIABLE = \"secret-name\" "
                               "or \"secret-name:VERSION\" (the secret's id, never its value)")
    secret, _, version = reference.partition(":")
    return SecretRef(variable, secret, version or "latest",
                     "checkout" if variable in CHECKOUT_SECRETS else "handler")


def _switch(value: Any, key: str) -> bool:
    text = str(value).strip().lower() if not isinstance(value, bool) else ("true" if value else "false")
    if text not in ("true", "false"):
        raise CloudConfigError(f"[cloud] {key} = {value!r}: expected true or false")
    return text == "true"


def _database(value: Any) -> str:
    name = str(value).strip()
    if name != DEFAULT_DATABASE and not DATABASE_ID.match(name):
        raise CloudConfigError(f"[cloud] firestore_database = {name!r}: a Firestore database id is \"(default)\" or "
                               "4-63 lower-case letters, digits and hyphens, starting with a letter")
    return name


def _pairs(items: Sequence[str], flag: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CloudConfigError(f"{flag} {item!r}: expected KEY=VALUE")
        pairs[key.strip()] = value.strip()
    return pairs


def load_cloud(raw: Mapping[str, Any], sets: Sequence[str] = (), secrets: Sequence[str] = (),
               channel: str | None = None) -> CloudConfig:
    """The ``[cloud]`` table of the catalog with ``--set``, ``--secret`` and ``--notification-channel`` on top."""
    table = {**{k: v for k, v in raw.items() if not isinstance(v, Mapping)}, **_pairs(sets, "--set")}
    unknown = sorted(set(table) - set(PLAIN) - set(MONITORING_KEYS) - set(SYSTEM_KEYS))
    if unknown:
        raise CloudConfigError(f"[cloud] {unknown[0]}: unknown setting; use one of "
                               f"{', '.join(sorted((*PLAIN, *MONITORING_KEYS, *SYSTEM_KEYS)))}")
    references = {**dict(raw.get("secrets", {})), **_pairs(secrets, "--secret")}
    channel = channel or table.get("notification_channel")
    if channel and not CHANNEL.match(str(channel)):
        raise CloudConfigError(f"notification_channel {channel!r}: expected projects/P/notificationChannels/ID "
                               "(gcloud alpha monitoring channels list)")
    return CloudConfig(
        plain={k: _text(v) for k, v in table.items() if k in PLAIN},
        secrets=tuple(secret_ref(k, str(v)) for k, v in sorted(references.items())),
        env={k: _text(v) for k, v in dict(raw.get("env", {})).items()},
        notification_channel=str(channel) if channel else None,
        retry_rate_threshold=float(table.get("retry_rate_threshold", 0.2)),
        oldest_task_minutes=int(table.get("oldest_task_minutes", 30)),
        checkout=_switch(table.get("checkout", True), "checkout"),
        firestore_database=_database(table.get("firestore_database", DEFAULT_DATABASE)),
        tracing=_switch(table.get("tracing", False), "tracing"))


def without_checkout(cloud: CloudConfig) -> CloudConfig:
    """``cloud`` when no checkout service is deployed: nothing of the checkout's is set or mounted."""
    plain = {k: v for k, v in cloud.plain.items() if PLAIN[k][1] != "checkout"}
    return replace(cloud, checkout=False, plain=plain,
                   secrets=tuple(s for s in cloud.secrets if s.deployable != "checkout"))


def _hint(problem: str, cloud: CloudConfig) -> str:
    variable = problem.split(" ", 1)[0].split("=", 1)[0]
    key = next((k for k, (v, _) in PLAIN.items() if v == variable), None)
    if key:
        return f"[cloud] {key} (or --set {key}=...): {problem}"
    if variable in ("ORDERTASKS_PROJECT", "ORDERTASKS_HANDLER_URL"):
        return f"--project / --handler-url: {problem}"
    if variable == "ORDERTASKS_CHECKOUT_URL":
        return f"--checkout-url: {problem}"
    if problem.startswith("["):
        return problem
    return f"[cloud.secrets] {variable} (or --secret {variable}=SECRET): {problem}"


def plan_problems(cloud: CloudConfig, deployed_env: Mapping[str, Mapping[str, str]],
                  catalog_path: Path = DEFAULT_CATALOG) -> list[str]:
    """What the deployed handler and checkout would refuse to start without, each with where to set it.

    ``catalog_path`` is the catalog being deployed: its webhooks and tokens are the ones checked.
    """
    problems: list[str] = []
    for deployable, env in deployed_env.items():
        mounted = {s.variable: PLACEHOLDER for s in cloud.secrets_for(deployable)}
        settings = Settings.from_env({**env, **mounted, "ORDERTASKS_CONFIG": str(catalog_path)})
        problems += [_hint(p, cloud) for p in cloud_problems(settings, deployable)]
    if not cloud.notification_channel:
        problems.append("[cloud] notification_channel (or --notification-channel): where alerts go, "
                        "projects/P/notificationChannels/ID")
    return list(dict.fromkeys(problems))
