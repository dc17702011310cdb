"""Configuration: the task catalog (``infra/tasks.toml`` by default) and runtime ``Settings``.

``load_catalog(path)`` reads the catalog once and validates it; every other module asks it
for queues, kinds, delays and identities.  ``Settings.from_env()`` is the only place in the
project that reads environment variables.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ordertasks.handlers.errors import ConfigurationError

log = logging.getLogger("ordertasks.config")
# The checkout of the repository, or the installed ``ordertasks`` package: both hold
# ``infra/tasks.toml`` and the project's data files at the same relative paths.
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CATALOG = REPO_ROOT / "infra" / "tasks.toml"
MAX_DELAY_SECONDS = 30 * 24 * 3600
QUEUE_ID = re.compile(r"^[A-Za-z0-9-]{1,100}$")
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"


def default_data_dir() -> Path:
    """Where local state lives unless ``ORDERTASKS_DATA_DIR`` says: ``var/`` of a checkout, or
    ``var/`` of the working directory for an installed package (never inside site-packages)."""
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / "var"
    return Path.cwd() / "var"


class CatalogError(ConfigurationError, ValueError):
    """The task catalog is invalid; the message names the file, line and what to fix."""


@dataclass(frozen=True)
class QueueConfig:
    """Rate and retry settings of one Cloud Tasks queue (durations in seconds)."""

    name: str
    max_dispatches_per_second: float = 25.0
    max_burst_size: int = 25
    max_concurrent_dispatches: int = 10
    max_attempts: int = 5
    min_backoff_seconds: float = 10.0
    max_backoff_seconds: float = 300.0
    max_doublings: int = 4
    max_retry_duration_seconds: float = 0.0


@dataclass(frozen=True)
class WebhookConfig:
    """A config-only HTTP integration: where a kind POSTs its data (``[kinds.NAME.webhook]``).

    ``url`` and ``timeout_seconds`` may name environment variables as ``${NAME}`` or
    ``${NAME:-default}``; they are expanded by the handler's wiring, so ``deploy`` and the CLI
    can read a catalog whose variables are only set where the handler runs.
    """

    url: str
    token_env: str | None = None
    timeout_seconds: float | str = 10.0
    token_optional: bool = False    # True: an unset token_env means "send no token" (the warehouse default)


@dataclass(frozen=True)
class KindConfig:
    """Where a task kind is queued, how long after checkout, its deadline and its code.

    ``effect`` is ``"module:attribute"`` for a shop's own kind; ``webhook`` a config-only HTTP
    integration; neither means a built-in kind of that name (``handlers/kinds/``).
    ``line`` is where the table starts in the catalog file, for start-up messages.
    """

    name: str
    queue: str
    delay_seconds: float
    dispatch_deadline_seconds: float = 600.0
    effect: str | None = None
    webhook: WebhookConfig | None = None
    line: int = 0


@dataclass(frozen=True)
class Catalog:
    """The whole of ``infra/tasks.toml``, validated."""

    project: str
    region: str
    handler_function: str
    invoice_bucket: str
    service_accounts: Mapping[str, str]
    queues: Mapping[str, QueueConfig]
    kinds: Mapping[str, KindConfig]
    lease_seconds: float = 120.0
    ttl_days: int = 35
    failed_retention_days: int = 90   # a resolved failed-task entry is deleted this long after
    analytics_shards: int = 8
    handler: Mapping[str, Any] = field(default_factory=dict)
    source: str = "infra/tasks.toml"

    def queue_for(self, kind: str) -> QueueConfig:
        """The queue configuration that carries tasks of ``kind``."""
        return self.queues[self.kinds[kind].queue]

    def service_account_email(self, role: str, project: str | None = None) -> str:
        """Email of the service account playing ``role`` (checkout, dispatcher, handler)."""
        return f"{self.service_accounts[role]}@{project or self.project}.iam.gserviceaccount.com"


def _line_of(text: str, table: str, key: str | None = None) -> int:
    """1-based line of ``[table]`` (or of ``key`` inside it) in the TOML text, 0 if absent."""
    lines = text.splitlines()
    header = re.compile(r"^\s*\[\s*" + re.escape(table).replace(r"\.", r"\s*\.\s*") + r"\s*\]")
    for number, line in enumerate(lines, start=1):
        if not header.match(line):
            continue
        if key is None:
            return number
        for offset, inner in enumerate(lines[number:], start=number + 1):
            if inner.lstrip().startswith("["):
                break
            if re.match(r"^\s*" + re.escape(key) + r"\s*=", inner):
                return offset
        return number
    return 0


def _queue(name: str, raw: Mapping[str, Any]) -> QueueConfig:
    known = set(QueueConfig.__dataclass_fields__) - {"name"}
    unknown = set(raw) - known
    if unknown:
        raise KeyError(sorted(unknown)[0])
    return QueueConfig(name=name, **raw)


def _check_queue(q: QueueConfig) -> str | None:
    if not QUEUE_ID.match(q.name):
        return f"queue id {q.name!r} must be 1-100 characters of [A-Za-z0-9-]"
    if not 0 <= q.max_dispatches_per_second <= 500:
        return "max_dispatches_per_second must be between 0 and 500"
    if not 0 <= q.max_concurrent_dispatches <= 5000:
        return "max_concurrent_dispatches must be between 0 and 5000"
    if q.max_attempts < -1 or q.max_attempts == 0:
        return "max_attempts must be -1 (unlimited) or at least 1"
    if q.min_backoff_seconds < 0 or q.min_backoff_seconds > q.max_backoff_seconds:
        return "min_backoff_seconds must be >= 0 and <= max_backoff_seconds"
    if q.max_doublings < 0:
        return "max_doublings must be >= 0"
    return None


KIND_KEYS = frozenset({"queue", "delay_seconds", "dispatch_deadline_seconds", "effect", "webhook"})
WEBHOOK_KEYS = frozenset(WebhookConfig.__dataclass_fields__) - {"token_optional"}
EFFECT_REF = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


def _webhook(raw: Any) -> WebhookConfig:
    if not isinstance(raw, Mapping):
        raise ValueError("webhook must be a table: [kinds.NAME.webhook] with url = \"https://...\"")
    unknown = set(raw) - WEBHOOK_KEYS
    if unknown:
        raise ValueError(f"unknown webhook setting {sorted(unknown)[0]!r}; use {sorted(WEBHOOK_KEYS)}")
    if not isinstance(raw.get("url"), str) or not raw["url"].strip():
        raise ValueError("webhook needs url = \"https://...\" (environment variables allowed: \"${CRM_URL}\")")
    token_env = raw.get("token_env")
    if token_env is not None and not (isinstance(token_env, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token_env)):
        raise ValueError("webhook token_env must be the name of an environment variable, e.g. \"CRM_TOKEN\"")
    return WebhookConfig(url=raw["url"].strip(), token_env=token_env, timeout_seconds=raw.get("timeout_seconds", 10.0))


def _kind(name: str, raw: Any, line: int) -> KindConfig:
    if not isinstance(raw, Mapping):
        raise ValueError("a kind must be a table with queue and delay_seconds")
    unknown = set(raw) - KIND_KEYS
    if unknown:
        raise ValueError(f"unknown setting {sorted(unknown)[0]!r}; a kind takes {sorted(KIND_KEYS)}")
    missing = [key for key in ("queue", "delay_seconds") if key not in raw]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    effect = raw.get("effect")
    if effect is not None and not (isinstance(effect, str) and EFFECT_REF.match(effect)):
        raise ValueError(f"effect {effect!r} must be \"package.module:attribute\"")
    webhook = _webhook(raw["webhook"]) if "webhook" in raw else None
    if effect and webhook:
        raise ValueError("give either effect = \"module:attribute\" or a webhook table, not both")
    return KindConfig(name=name, queue=raw["queue"], delay_seconds=float(raw["delay_seconds"]),
                      dispatch_deadline_seconds=float(raw.get("dispatch_deadline_seconds", 600.0)),
                      effect=effect, webhook=webhook, line=line)


def _check_kind(kind: KindConfig, queues: Mapping[str, QueueConfig]) -> tuple[str | None, str] | None:
    if kind.queue not in queues:
        return "queue", f"unknown queue {kind.queue!r}; define [queues.{kind.queue}] or use one of {sorted(queues)}"
    if not 0 <= kind.delay_seconds <= MAX_DELAY_SECONDS:
        return "delay_seconds", f"delay_seconds={kind.delay_seconds} is over Cloud Tasks' 30-day limit ({MAX_DELAY_SECONDS} s)"
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", kind.name):
        return None, f"kind name {kind.name!r} must be 1-63 characters of a-z 0-9 _, starting with a letter"
    if not 15 <= kind.dispatch_deadline_seconds <= 1800:
        return "dispatch_deadline_seconds", "dispatch_deadline_seconds must be between 15 and 1800"
    return None


def load_catalog(path: str | Path = DEFAULT_CATALOG) -> Catalog:
    """Read and validate the catalog; raise ``CatalogError`` naming the offending line."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: not valid TOML: {exc}") from exc

    def fail(table: str, key: str | None, message: str) -> CatalogError:
        return CatalogError(f"{path}:{_line_of(text, table, key)}: [{table}] {message}")

    queues: dict[str, QueueConfig] = {}
    for name, body in raw.get("queues", {}).items():
        try:
            queues[name] = _queue(name, body)
        except (KeyError, TypeError) as exc:
            raise fail(f"queues.{name}", None, f"unknown or malformed setting {exc}") from exc
        problem = _check_queue(queues[name])
        if problem:
            raise fail(f"queues.{name}", None, problem)
    kinds: dict[str, KindConfig] = {}
    for name, body in raw.get("kinds", {}).items():
        try:
            kinds[name] = _kind(name, body, _line_of(text, f"kinds.{name}"))
        except (TypeError, ValueError) as exc:
            raise fail(f"kinds.{name}", None, str(exc)) from exc
        kind_problem = _check_kind(kinds[name], queues)
        if kind_problem:
            raise fail(f"kinds.{name}", kind_problem[0], kind_problem[1])
    try:
        retention_days = _retention_days(raw.get("failed_tasks", {}))
    except ValueError as exc:
        raise fail("failed_tasks", "retention_days", str(exc)) from exc
    project = raw.get("project", {})
    return Catalog(
        project=project.get("id", "local-project"),
        region=project.get("region", "us-central1"),
        handler_function=project.get("handler_function", "ordertasks-handler"),
        invoice_bucket=project.get("invoice_bucket", "ordertasks-invoices"),
        service_accounts=dict(raw.get("service_accounts", {})),
        queues=queues,
        kinds=kinds,
        lease_seconds=float(raw.get("idempotency", {}).get("lease_seconds", 120)),
        ttl_days=int(raw.get("idempotency", {}).get("ttl_days", 35)),
        failed_retention_days=retention_days,
        analytics_shards=int(raw.get("analytics", {}).get("shards", 8)),
        handler=dict(raw.get("handler", {})),
        source=str(path),
    )


def _retention_days(raw: Mapping[str, Any]) -> int:
    """``[failed_tasks] retention_days``: how long a resolved entry is kept (default 90)."""
    days = raw.get("retention_days", 90)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"retention_days = {days!r} is not a whole number of days >= 1 (default 90)")
    return days


ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
TOKEN_ENV = re.compile(r"^\s*token_env\s*=\s*[\"']([A-Za-z_][A-Za-z0-9_]*)[\"']", re.M)


def _webhook_environment(env: Mapping[str, str], catalog_path: Path) -> dict[str, str]:
    """The variables webhooks may read: ``ORDERTASKS_*`` and every name the catalog refers to."""
    try:
        text = catalog_path.read_text(encoding="utf-8")
    except OSError:
        text = ""  # load_catalog reports the missing file with its own message
    named = {m.group(1) for m in ENV_REFERENCE.finditer(text)} | set(TOKEN_ENV.findall(text))
    return {k: v for k, v in env.items() if k in named or k.startswith("ORDERTASKS_")}


def expand(value: str, environment: Mapping[str, str], where: str) -> str:
    """``value`` with ``${NAME}`` / ``${NAME:-default}`` replaced; ``ConfigurationError`` if unset."""
    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = environment.get(name) or default
        if found is None:
            raise ConfigurationError(f"{where} uses ${{{name}}}, which is not set: export {name}=... "
                                     f"or write ${{{name}:-default}}")
        return found
    return ENV_REFERENCE.sub(substitute, value)


TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def parse_flag(name: str, value: str | None, default: bool) -> bool:
    """A boolean setting; anything but the eight accepted words stops start-up (never fail open)."""
    if value is None:
        return default
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigurationError(f"ORDERTASKS_{name}={value!r} is not a boolean: use one of "
                             "true/false, 1/0, yes/no, on/off (case-insensitive)")


def _check_settings(settings: "Settings") -> "Settings":
    """Refuse combinations that would run a deployment open; warn about local-only choices."""
    if settings.backend not in ("local", "cloud"):
        raise ConfigurationError(f"ORDERTASKS_BACKEND={settings.backend!r} is not a backend: use local or cloud")
    if settings.payments not in (None, "stripe", "local"):
        raise ConfigurationError(f"ORDERTASKS_PAYMENTS={settings.payments!r} is not a payment processor: "
                                 "use stripe or local (local takes no money)")
    if settings.tasks_transport not in TASKS_TRANSPORTS:
        raise ConfigurationError(f"ORDERTASKS_TASKS_TRANSPORT={settings.tasks_transport!r} is not a transport: "
                                 "use grpc or rest")
    if not settings.oidc_verify:
        if settings.backend == "cloud":
            raise ConfigurationError("ORDERTASKS_OIDC_VERIFY=false is refused with ORDERTASKS_BACKEND=cloud: "
                                     "the handler and /internal/* must verify Cloud Tasks' OIDC tokens")
        log.warning("ORDERTASKS_OIDC_VERIFY is off: the handler and /internal/* accept unauthenticated "
                    "requests (local use only)")
    return settings


SMTPS_PORT = 465
TASKS_TRANSPORTS = ("grpc", "rest")


def _smtp_tls(starttls: str | None, implicit: str | None, cloud: bool, port: int) -> dict[str, bool]:
    """TLS on by default in the cloud: implicit on the SMTPS port, STARTTLS elsewhere."""
    implicit_tls = parse_flag("SMTP_IMPLICIT_TLS", implicit, cloud and port == SMTPS_PORT)
    return {"smtp_implicit_tls": implicit_tls,
            "smtp_starttls": parse_flag("SMTP_STARTTLS", starttls, cloud and not implicit_tls)}


@dataclass(frozen=True)
class Settings:
    """Everything a deployable needs to choose and configure its backends.

    Build with ``Settings.from_env()``; tests build it directly or with ``replace``.
    ``backend`` is ``"local"`` (SQLite, a blob directory, the local Cloud Tasks emulator:
    the embedded default) or ``"cloud"`` (Firestore, GCS, Cloud Tasks).
    """

    backend: str = "local"
    catalog_path: Path = DEFAULT_CATALOG
    project: str | None = None
    location: str | None = None
    data_dir: Path = field(default_factory=lambda: default_data_dir())
    sqlite_path: Path | None = None
    blob_dir: Path | None = None
    invoice_bucket: str | None = None
    firestore_database: str = "(default)"
    # Cloud Tasks
    cloud_tasks_emulator_host: str | None = None
    tasks_transport: str = "grpc"  # how the Cloud Tasks client talks: grpc (as in production) or rest
    handler_url: str = "http://127.0.0.1:8081/"
    checkout_url: str = "http://127.0.0.1:8080/"
    maintenance_url: str | None = None      # run_maintenance's URL (its OIDC audience); default handler_url
    enqueue_concurrently: bool = True
    enqueue_timeout_seconds: float = 10.0
    delay_scale: float = 1.0
    # OIDC on the handler and on internal endpoints
    oidc_verify: bool = True
    oidc_certs_url: str = GOOGLE_CERTS_URL
    oidc_audience: str | None = None
    oidc_allowed_emails: tuple[str, ...] = ()
    # Email
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_implicit_tls: bool = False
    smtp_timeout_seconds: float = 10.0
    mail_from: str = "Example Shop <orders@shop.example>"
    # Seller details printed on invoices
    seller_name: str = "Example Shop Ltd"
    seller_address: str = "1 Market Street, 10115 Berlin, DE"
    seller_tax_id: str = "DE000000000"
    # Payments: processor "stripe" | "local" (None: stripe in the cloud, local locally)
    payments: str | None = None
    allow_test_payments: bool = False
    stripe_secret_key: str | None = field(default=None, repr=False)
    stripe_webhook_secret: str | None = field(default=None, repr=False)
    stripe_api_base: str | None = None
    stripe_timeout_seconds: float = 20.0
    log_level: str = "INFO"
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)
    function_target: str | None = None  # FUNCTION_TARGET: the entry point Cloud Run functions serve
    # Variables webhooks read (``${NAME}``, ``token_env``): those the catalog names, and
    # ORDERTASKS_*. Kept out of repr and comparisons: it holds secrets.
    environment: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def sqlite_file(self) -> Path:
        """The SQLite database used by the local backend."""
        return self.sqlite_path or self.data_dir / "ordertasks.db"

    @property
    def blob_root(self) -> Path:
        """The directory that stands in for the invoice bucket locally."""
        return self.blob_dir or self.data_dir / "blobs"

    @property
    def payment_processor(self) -> str:
        """``ORDERTASKS_PAYMENTS``, defaulting to ``stripe`` in the cloud and ``local`` locally."""
        return self.payments or ("stripe" if self.backend == "cloud" else "local")

    @property
    def test_payments(self) -> bool:
        """True when the cloud takes no money: the local gateway, explicitly allowed."""
        return self.backend == "cloud" and self.payment_processor == "local" and self.allow_test_payments

    @property
    def audience(self) -> str:
        """The OIDC audience the handler expects: its own base URL unless set."""
        return self.oidc_audience or self.handler_url

    @property
    def certs_url(self) -> str:
        """Where token-signing certificates come from: Google's, or the local emulator's."""
        if self.oidc_certs_url == GOOGLE_CERTS_URL and self.backend == "local" and self.cloud_tasks_emulator_host:
            return f"http://{self.cloud_tasks_emulator_host}/oauth2/v1/certs"
        return self.oidc_certs_url

    def catalog(self) -> Catalog:
        """The catalog this deployment uses, with project/region overrides applied."""
        cat = load_catalog(self.catalog_path)
        return replace(cat, project=self.project or cat.project, region=self.location or cat.region)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read ``ORDERTASKS_*`` (and ``CLOUD_TASKS_EMULATOR_HOST``) variables; see README."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get("ORDERTASKS_" + name)
            return value if value not in (None, "") else None

        data_dir = Path(get("DATA_DIR") or default_data_dir())
        values: dict[str, Any] = {
            "backend": get("BACKEND") or "local",
            "catalog_path": Path(get("CONFIG") or DEFAULT_CATALOG),
            "project": get("PROJECT"),
            "location": get("LOCATION"),
            "data_dir": data_dir,
            "sqlite_path": Path(p) if (p := get("SQLITE_PATH")) else None,
            "blob_dir": Path(p) if (p := get("BLOB_DIR")) else None,
            "invoice_bucket": get("INVOICE_BUCKET"),
            "firestore_database": get("FIRESTORE_DATABASE") or "(default)",
            "cloud_tasks_emulator_host": env.get("CLOUD_TASKS_EMULATOR_HOST") or None,
            "tasks_transport": get("TASKS_TRANSPORT") or "grpc",
            "handler_url": get("HANDLER_URL") or cls.handler_url,
            "checkout_url": get("CHECKOUT_URL") or cls.checkout_url,
            "maintenance_url": get("MAINTENANCE_URL"),
            "enqueue_concurrently": get("ENQUEUE_MODE") != "sequential",
            "enqueue_timeout_seconds": float(get("ENQUEUE_TIMEOUT") or 10.0),
            "delay_scale": float(get("DELAY_SCALE") or 1.0),
            "oidc_verify": parse_flag("OIDC_VERIFY", get("OIDC_VERIFY"), True),
            "oidc_certs_url": get("OIDC_CERTS_URL") or GOOGLE_CERTS_URL,
            "oidc_audience": get("OIDC_AUDIENCE"),
            "oidc_allowed_emails": tuple(e.strip() for e in (get("OIDC_ALLOWED_EMAILS") or "").split(",") if e.strip()),
            "smtp_host": get("SMTP_HOST") or cls.smtp_host,
            "smtp_port": int(get("SMTP_PORT") or cls.smtp_port),
            "smtp_username": get("SMTP_USERNAME"),
            "smtp_password": get("SMTP_PASSWORD"),
            **_smtp_tls(get("SMTP_STARTTLS"), get("SMTP_IMPLICIT_TLS"), get("BACKEND") == "cloud",
                        int(get("SMTP_PORT") or cls.smtp_port)),
            "smtp_timeout_seconds": float(get("SMTP_TIMEOUT") or 10.0),
            "mail_from": get("MAIL_FROM") or cls.mail_from,
            "seller_name": get("SELLER_NAME") or cls.seller_name,
            "seller_address": get("SELLER_ADDRESS") or cls.seller_address,
            "seller_tax_id": get("SELLER_TAX_ID") or cls.seller_tax_id,
            "payments": get("PAYMENTS"),
            "allow_test_payments": parse_flag("ALLOW_TEST_PAYMENTS", get("ALLOW_TEST_PAYMENTS"), False),
            "stripe_secret_key": get("STRIPE_SECRET_KEY"),
            "stripe_webhook_secret": get("STRIPE_WEBHOOK_SECRET"),
            "stripe_api_base": get("STRIPE_API_BASE"),
            "stripe_timeout_seconds": float(get("STRIPE_TIMEOUT") or 20.0),
            "log_level": get("LOG_LEVEL") or "INFO",
            "extra": {k: v for k, v in env.items() if k.startswith("ORDERTASKS_")},
            "environment": _webhook_environment(env, Path(get("CONFIG") or DEFAULT_CATALOG)),
            "function_target": env.get("FUNCTION_TARGET") or None,
        }
        return _check_settings(cls(**values))
