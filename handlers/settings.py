"""Runtime ``Settings``: a few small value objects, one per concern, read from ``ORDERTASKS_*``.

    Settings                 backend, catalog_path, project, location, log_level, function_target
    ├── store: StoreSettings       data_dir, sqlite_path, blob_dir, invoice_bucket, firestore_database,
    │                              outbox_url (the shop's database holding the transactional outbox)
    ├── tasks: TasksSettings       emulator_host, transport, handler_url, checkout_url, maintenance_url,
    │                              enqueue_concurrently, enqueue_batches, enqueue_timeout_seconds,
    │                              delay_scale
    ├── oidc: OidcSettings         verify, certs_url, audience, allowed_emails, allowed_certs_url
    ├── smtp: SmtpSettings         host, port, username, password, starttls, implicit_tls,
    │                              timeout_seconds, mail_from
    ├── payment: PaymentSettings   processor, allow_test_payments, customer_cancel,
    │                              stripe_* (secrets out of repr)
    ├── seller: SellerSettings     name, address, tax_id (printed on invoices)
    └── tracing: TracingSettings   exporters (OTEL_TRACES_EXPORTER), traces_url

``Settings.from_env()`` is the only place in the project that reads ``os.environ``: it builds
one ``PrefixedEnvironment`` reader and hands it to each value object's ``from_env(reader)``,
so a bad value stops start-up with a message naming the variable. The variable names and
defaults are listed in the README's settings table.

The flat names of ``Settings`` before the split still work, with an
``OrderTasksDeprecationWarning``: reading ``settings.smtp_host``, building
``Settings(smtp_port=2525)`` and ``dataclasses.replace(settings, smtp_port=2525)``.
``FLAT_NAMES`` maps each to its group and field.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ordertasks.handlers.environment import PrefixedEnvironment
from ordertasks.handlers.errors import ConfigurationError, OrderTasksDeprecationWarning
from ordertasks.handlers.redact import unsendable

if TYPE_CHECKING:
    from ordertasks.handlers.config import Catalog

log = logging.getLogger("ordertasks.config")
# The checkout of the repository, or the installed ``ordertasks`` package: both hold
# ``infra/tasks.toml`` and the project's data files at the same relative paths.
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CATALOG = REPO_ROOT / "infra" / "tasks.toml"
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
SMTPS_PORT = 465
TOKEN_SUFFIX = "_TOKEN"     # ORDERTASKS_WAREHOUSE_TOKEN and any other ORDERTASKS_*_TOKEN a webhook sends
Member = TypeVar("Member", bound=StrEnum)


def default_data_dir() -> Path:
    """Where local state lives unless ``ORDERTASKS_DATA_DIR`` says: ``var/`` of a checkout, or
    ``var/`` of the working directory for an installed package (never inside site-packages)."""
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / "var"
    return Path.cwd() / "var"


class Backend(StrEnum):
    """``ORDERTASKS_BACKEND``: the embedded local stack, or Google Cloud."""

    LOCAL = "local"     # SQLite, a blob directory, the local Cloud Tasks emulator
    CLOUD = "cloud"     # Firestore, GCS, Cloud Tasks


class PaymentProcessor(StrEnum):
    """``ORDERTASKS_PAYMENTS``: who takes the money."""

    STRIPE = "stripe"   # PaymentIntents
    LOCAL = "local"     # test tokens, no money


class TasksTransport(StrEnum):
    """``ORDERTASKS_TASKS_TRANSPORT``: how the Cloud Tasks client talks."""

    GRPC = "grpc"       # the client's default, as in production
    REST = "rest"


class EnqueueMode(StrEnum):
    """``ORDERTASKS_ENQUEUE_MODE``: a checkout's tasks created at once, or one by one."""

    CONCURRENT = "concurrent"
    SEQUENTIAL = "sequential"   # the benchmark baseline only
    BATCH = "batch"             # at once, and the tasks that share a queue in one BatchCreateTasks


def member(choices: type[Member], value: str, setting: str) -> Member:
    """``value`` as a member of ``choices`` (a plain string is accepted); else ``ConfigurationError``."""
    try:
        return choices(value)
    except ValueError:
        words = " or ".join(m.value for m in choices)
        raise ConfigurationError(f"{setting}={value!r} is not a {choices.__name__}: use {words}") from None


@dataclass(frozen=True)
class StoreSettings:
    """Where state is kept: the local SQLite file and blob directory, or Firestore and GCS."""

    data_dir: Path = field(default_factory=default_data_dir)
    sqlite_path: Path | None = None
    blob_dir: Path | None = None
    invoice_bucket: str | None = None      # None: the catalog's invoice_bucket
    firestore_database: str = "(default)"
    # The shop's database holding the transactional outbox (producer.outbox); it may carry a
    # password, so it is kept out of repr.
    outbox_url: str | None = field(default=None, repr=False)

    @property
    def sqlite_file(self) -> Path:
        """The SQLite database used by the local backend."""
        return self.sqlite_path or self.data_dir / "ordertasks.db"

    @property
    def blob_root(self) -> Path:
        """The directory that stands in for the invoice bucket locally."""
        return self.blob_dir or self.data_dir / "blobs"

    @classmethod
    def from_env(cls, env: PrefixedEnvironment) -> "StoreSettings":
        """``ORDERTASKS_DATA_DIR``, ``_SQLITE_PATH``, ``_BLOB_DIR``, ``_INVOICE_BUCKET``, ``_FIRESTORE_DATABASE``,
        ``_OUTBOX_URL``."""
        return cls(data_dir=env.path("DATA_DIR") or default_data_dir(), sqlite_path=env.path("SQLITE_PATH"),
                   blob_dir=env.path("BLOB_DIR"), invoice_bucket=env.text("INVOICE_BUCKET"),
                   firestore_database=env.text("FIRESTORE_DATABASE", "(default)") or "(default)",
                   outbox_url=env.text("OUTBOX_URL"))


@dataclass(frozen=True)
class TasksSettings:
    """Cloud Tasks: the client's endpoint and transport, where tasks go, how they are created."""

    emulator_host: str | None = None       # CLOUD_TASKS_EMULATOR_HOST, the variable Firebase's tools use
    transport: TasksTransport = TasksTransport.GRPC
    handler_url: str = "http://127.0.0.1:8081/"
    checkout_url: str = "http://127.0.0.1:8080/"
    maintenance_url: str | None = None     # run_maintenance's URL (its OIDC audience); None: handler_url
    enqueue_concurrently: bool = True
    enqueue_batches: bool = False          # an order's tasks that share a queue: one BatchCreateTasks
    enqueue_timeout_seconds: float = 10.0
    delay_scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "transport", member(TasksTransport, self.transport, "ORDERTASKS_TASKS_TRANSPORT"))

    @classmethod
    def from_env(cls, env: PrefixedEnvironment) -> "TasksSettings":
        """``CLOUD_TASKS_EMULATOR_HOST`` and ``ORDERTASKS_TASKS_TRANSPORT``, ``_HANDLER_URL``, ..."""
        mode = env.choice("ENQUEUE_MODE", EnqueueMode, EnqueueMode.CONCURRENT, what="an enqueue mode")
        return cls(emulator_host=env.unprefixed().text("CLOUD_TASKS_EMULATOR_HOST"),
                   transport=env.choice("TASKS_TRANSPORT", TasksTransport, TasksTransport.GRPC, what="a transport"),
                   handler_url=env.text("HANDLER_URL", cls.handler_url) or cls.handler_url,
                   checkout_url=env.text("CHECKOUT_URL", cls.checkout_url) or cls.checkout_url,
                   maintenance_url=env.text("MAINTENANCE_URL"),
                   enqueue_concurrently=mode is not EnqueueMode.SEQUENTIAL,
                   enqueue_batches=mode is EnqueueMode.BATCH,
                   enqueue_timeout_seconds=env.number("ENQUEUE_TIMEOUT", 10.0, positive=True),
                   delay_scale=env.number("DELAY_SCALE", 1.0, minimum=0))


@dataclass(frozen=True)
class OidcSettings:
    """Verification of the OIDC tokens on the handler and on ``/internal/*``."""

    verify: bool = True
    certs_url: str = GOOGLE_CERTS_URL
    audience: str | None = None            # None: the handler URL (``Settings.audience``)
    allowed_emails: tuple[str, ...] = ()   # empty: the catalog's dispatcher account
    # In the cloud a certs_url other than Google's is refused unless this names it too
    # (``handlers.cloud_readiness``): a second, deliberate statement, never a default.
    allowed_certs_url: str | None = None

    @classmethod
    def from_env(cls, env: PrefixedEnvironment) -> "OidcSettings":
        """``ORDERTASKS_OIDC_VERIFY``, ``_OIDC_CERTS_URL``, ``_OIDC_AUDIENCE``, ``_OIDC_ALLOWED_EMAILS``,
        ``_OIDC_ALLOWED_CERTS_URL``."""
        return cls(verify=env.flag("OIDC_VERIFY", True),
                   certs_url=env.text("OIDC_CERTS_URL", GOOGLE_CERTS_URL) or GOOGLE_CERTS_URL,
                   audience=env.text("OIDC_AUDIENCE"), allowed_emails=env.names("OIDC_ALLOWED_EMAILS"),
                   allowed_certs_url=env.text("OIDC_ALLOWED_CERTS_URL"))


@dataclass(frozen=True)
class SmtpSettings:
    """The SMTP relay order emails go through, and their sender."""

    host: str = "127.0.0.1"
    port: int = 1025
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    implicit_tls: bool = False
    timeout_seconds: float = 10.0
    mail_from: str = "Example Shop <orders@shop.example>"

    @classmethod
    def from_env(cls, env: PrefixedEnvironment, *, cloud: bool = False) -> "SmtpSettings":
        """``ORDERTASKS_SMTP_*`` and ``ORDERTASKS_MAIL_FROM``; TLS defaults on in the ``cloud``:
        implicit on the SMTPS port (465), STARTTLS elsewhere."""
        port = env.whole("SMTP_PORT", cls.port, minimum=1, maximum=65535)
        implicit_tls = env.flag("SMTP_IMPLICIT_TLS", cloud and port == SMTPS_PORT)
        return cls(host=env.text("SMTP_HOST", cls.host) or cls.host, port=port,
                   username=env.text("SMTP_USERNAME"), password=env.text("SMTP_PASSWORD"),
                   starttls=env.flag("SMTP_STARTTLS", cloud and not implicit_tls), implicit_tls=implicit_tls,
                   timeout_seconds=env.number("SMTP_TIMEOUT", 10.0, positive=True),
                   mail_from=env.text("MAIL_FROM", cls.mail_from) or cls.mail_from)


@dataclass(frozen=True)
class PaymentSettings:
    """Who takes the money, and Stripe's credentials (never in ``repr``)."""

    processor: PaymentProcessor | None = None      # None: stripe in the cloud, local locally
    allow_test_payments: bool = False
    customer_cancel: bool | None = None            # None: on locally, off in the cloud
    stripe_secret_key: str | None = field(default=None, repr=False)
    stripe_webhook_secret: str | None = field(default=None, repr=False)
    stripe_api_base: str | None = None             # a Stripe stand-in (tests only; refused in the cloud)
    stripe_timeout_seconds: float = 20.0

    def __post_init__(self) -> None:
        if self.processor is not None:
            object.__setattr__(self, "processor", member(PaymentProcessor, self.processor, "ORDERTASKS_PAYMENTS"))

    def processor_for(self, backend: Backend) -> PaymentProcessor:
        """``processor``, defaulting to ``stripe`` in the cloud and ``local`` locally."""
        if self.processor is not None:
            return self.processor
        return PaymentProcessor.STRIPE if backend == Backend.CLOUD else PaymentProcessor.LOCAL

    def customer_cancel_for(self, backend: Backend) -> bool:
        """``customer_cancel``, defaulting to off in the cloud (a shop opts in) and on locally."""
        if self.customer_cancel is not None:
            return self.customer_cancel
        return backend != Backend.CLOUD

    @classmethod
    def from_env(cls, env: PrefixedEnvironment) -> "PaymentSettings":
        """``ORDERTASKS_PAYMENTS``, ``_ALLOW_TEST_PAYMENTS``, ``_CUSTOMER_CANCEL`` and ``ORDERTASKS_STRIPE_*``."""
        processor = env.choice("PAYMENTS", PaymentProcessor, PaymentProcessor.STRIPE, what="a payment processor",
                               note=" (local takes no money)") if env.text("PAYMENTS") else None
        # Unset stays None so the default can follow the backend (see customer_cancel_for).
        customer_cancel = env.flag("CUSTOMER_CANCEL", False) if env.text("CUSTOMER_CANCEL") else None
        return cls(processor=processor, allow_test_payments=env.flag("ALLOW_TEST_PAYMENTS", False),
                   customer_cancel=customer_cancel,
                   stripe_secret_key=env.text("STRIPE_SECRET_KEY"),
                   stripe_webhook_secret=env.text("STRIPE_WEBHOOK_SECRET"),
                   stripe_api_base=env.text("STRIPE_API_BASE"),
                   stripe_timeout_seconds=env.number("STRIPE_TIMEOUT", 20.0, positive=True))


@dataclass(frozen=True)
class SellerSettings:
    """The shop as printed on invoices (the sender address is ``SmtpSettings.mail_from``)."""

    name: str = "Example Shop Ltd"
    address: str = "1 Market Street, 10115 Berlin, DE"
    tax_id: str = "DE000000000"

    @classmethod
    def from_env(cls, env: PrefixedEnvironment) -> "SellerSettings":
        """``ORDERTASKS_SELLER_NAME``, ``_SELLER_ADDRESS``, ``_SELLER_TAX_ID``."""
        return cls(name=env.text("SELLER_NAME", cls.name) or cls.name,
                   address=env.text("SELLER_ADDRESS", cls.address) or cls.address,
                   tax_id=env.text("SELLER_TAX_ID", cls.tax_id) or cls.tax_id)


@dataclass(frozen=True)
class TracingSettings:
    """Whether this process traces (``handlers.tracing``), and the local trace receiver.

    On when ``OTEL_TRACES_EXPORTER`` names one or more exporters (``otlp``, ``console``,
    ``gcp_trace``); off when it is unset, ``none``, or ``OTEL_SDK_DISABLED=true``. Everything
    else (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``, ``OTEL_TRACES_SAMPLER``, …) is
    read by the OpenTelemetry SDK itself. ``traces_url``: the dev stack's trace receiver
    (``ORDERTASKS_TRACES_URL``), where the console reads an order's trace.
    """

    exporters: tuple[str, ...] = ()
    traces_url: str | None = None

    @property
    def enabled(self) -> bool:
        """True when spans are exported somewhere."""
        return bool(self.exporters)

    @classmethod
    def from_env(cls, env: PrefixedEnvironment) -> "TracingSettings":
        """``OTEL_TRACES_EXPORTER``, ``OTEL_SDK_DISABLED`` and ``ORDERTASKS_TRACES_URL``."""
        otel = env.unprefixed()
        names = tuple(n.strip().lower() for n in (otel.text("OTEL_TRACES_EXPORTER") or "").split(",") if n.strip())
        off = otel.flag("OTEL_SDK_DISABLED", False) or names == ("none",)
        return cls(exporters=() if off else tuple(n for n in names if n != "none"),
                   traces_url=env.text("TRACES_URL"))


GROUPS: Mapping[str, type] = {"store": StoreSettings, "tasks": TasksSettings, "oidc": OidcSettings,
                              "smtp": SmtpSettings, "payment": PaymentSettings, "seller": SellerSettings,
                              "tracing": TracingSettings}
# The flat attribute names of Settings before the split → (group, field). Reads through
# ``Settings.__getattr__`` and flat keywords of the constructor warn.
FLAT_NAMES: Mapping[str, tuple[str, str]] = {
    **{name: ("store", name) for name in ("data_dir", "sqlite_path", "blob_dir", "invoice_bucket",
                                          "firestore_database", "sqlite_file", "blob_root")},
    "cloud_tasks_emulator_host": ("tasks", "emulator_host"), "tasks_transport": ("tasks", "transport"),
    **{name: ("tasks", name) for name in ("handler_url", "checkout_url", "maintenance_url", "enqueue_concurrently",
                                          "enqueue_timeout_seconds", "delay_scale")},
    **{f"oidc_{name}": ("oidc", name) for name in ("verify", "certs_url", "audience", "allowed_emails")},
    **{f"smtp_{name}": ("smtp", name) for name in ("host", "port", "username", "password", "starttls",
                                                   "implicit_tls", "timeout_seconds")},
    "mail_from": ("smtp", "mail_from"),
    **{f"seller_{name}": ("seller", name) for name in ("name", "address", "tax_id")},
    "payments": ("payment", "processor"), "allow_test_payments": ("payment", "allow_test_payments"),
    **{f"stripe_{name}": ("payment", f"stripe_{name}") for name in ("secret_key", "webhook_secret", "api_base",
                                                                    "timeout_seconds")},
}


def _deprecated(name: str, stacklevel: int = 3) -> None:
    group, attribute = FLAT_NAMES[name]
    warnings.warn(f"Settings.{name} is deprecated: use settings.{group}.{attribute}",
                  OrderTasksDeprecationWarning, stacklevel=stacklevel)


@dataclass(frozen=True)
class Settings:
    """Everything a deployable needs to choose and configure its backends.

    Build with ``Settings.from_env()``; tests build it directly (``Settings(smtp=SmtpSettings(port=2525))``)
    or change it with ``settings.with_changes(smtp={"port": 2525})``.
    ``backend`` is ``"local"`` (SQLite, a blob directory, the local Cloud Tasks emulator:
    the embedded default) or ``"cloud"`` (Firestore, GCS, Cloud Tasks).
    """

    backend: Backend = Backend.LOCAL
    catalog_path: Path = DEFAULT_CATALOG
    project: str | None = None             # None: the catalog's project id
    location: str | None = None            # None: the catalog's region
    store: StoreSettings = field(default_factory=StoreSettings)
    tasks: TasksSettings = field(default_factory=TasksSettings)
    oidc: OidcSettings = field(default_factory=OidcSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    payment: PaymentSettings = field(default_factory=PaymentSettings)
    seller: SellerSettings = field(default_factory=SellerSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)
    log_level: str = "INFO"
    function_target: str | None = None     # FUNCTION_TARGET: the entry point Cloud Run functions serve
    # Variables webhooks read (``${NAME}``, ``token_env``): those the catalog names, and
    # ORDERTASKS_*. Kept out of repr and comparisons: it holds secrets.
    environment: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "backend", member(Backend, self.backend, "ORDERTASKS_BACKEND"))

    @property
    def payment_processor(self) -> PaymentProcessor:
        """``ORDERTASKS_PAYMENTS``, defaulting to ``stripe`` in the cloud and ``local`` locally."""
        return self.payment.processor_for(self.backend)

    @property
    def customer_cancel(self) -> bool:
        """``ORDERTASKS_CUSTOMER_CANCEL``: may a customer cancel with the order's cancel token?
        Default on locally, off in the cloud."""
        return self.payment.customer_cancel_for(self.backend)

    @property
    def test_payments(self) -> bool:
        """True when the cloud takes no money: the local gateway, explicitly allowed."""
        return (self.backend == Backend.CLOUD and self.payment_processor == PaymentProcessor.LOCAL
                and self.payment.allow_test_payments)

    @property
    def audience(self) -> str:
        """The OIDC audience the handler expects: its own base URL unless set."""
        return self.oidc.audience or self.tasks.handler_url

    @property
    def certs_url(self) -> str:
        """Where token-signing certificates come from: Google's, or the local emulator's."""
        if self.oidc.certs_url == GOOGLE_CERTS_URL and self.backend == Backend.LOCAL and self.tasks.emulator_host:
            return f"http://{self.tasks.emulator_host}/oauth2/v1/certs"
        return self.oidc.certs_url

    def catalog(self) -> "Catalog":
        """The catalog this deployment uses, with project/region overrides applied."""
        from ordertasks.handlers.config import load_catalog

        cat = load_catalog(self.catalog_path)
        return replace(cat, project=self.project or cat.project, region=self.location or cat.region)

    def with_changes(self, **changes: Any) -> "Settings":
        """A copy with top-level fields replaced and groups changed field by field:
        ``settings.with_changes(backend="cloud", smtp={"port": 2525})``."""
        made = {name: replace(getattr(self, name), **value) if name in GROUPS and isinstance(value, Mapping)
                else value for name, value in changes.items()}
        return replace(self, **made)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read ``ORDERTASKS_*`` (and ``CLOUD_TASKS_EMULATOR_HOST``, ``FUNCTION_TARGET``,
        ``OTEL_TRACES_EXPORTER``, ``OTEL_SDK_DISABLED``); see README."""
        raw = os.environ if environ is None else environ
        env = PrefixedEnvironment(raw)
        backend = env.choice("BACKEND", Backend, Backend.LOCAL, what="a backend")
        catalog_path = catalog_path_from(env)
        settings = cls(backend=backend, catalog_path=catalog_path, project=env.text("PROJECT"),
                       location=env.text("LOCATION"), store=StoreSettings.from_env(env),
                       tasks=TasksSettings.from_env(env), oidc=OidcSettings.from_env(env),
                       smtp=SmtpSettings.from_env(env, cloud=backend == Backend.CLOUD),
                       payment=PaymentSettings.from_env(env), seller=SellerSettings.from_env(env),
                       tracing=TracingSettings.from_env(env),
                       log_level=env.text("LOG_LEVEL", "INFO") or "INFO",
                       function_target=env.unprefixed().text("FUNCTION_TARGET"),
                       environment=webhook_environment(raw, catalog_path))
        return refuse_open(settings)

    if not TYPE_CHECKING:
        # Hidden from mypy on purpose: our own code must not read the flat names.
        def __getattr__(self, name: str) -> Any:
            if name not in FLAT_NAMES:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            _deprecated(name)
            group, attribute = FLAT_NAMES[name]
            return getattr(getattr(self, group), attribute)


def _grouped(flat: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` with each deprecated flat keyword (``smtp_port=…``) folded into its group."""
    changes: dict[str, dict[str, Any]] = {}
    for name, value in flat.items():
        _deprecated(name, stacklevel=4)
        group, attribute = FLAT_NAMES[name]
        changes.setdefault(group, {})[attribute] = value
    for group, values in changes.items():
        given[group] = replace(given.get(group) or GROUPS[group](), **values)
    return given


if not TYPE_CHECKING:
    # ``Settings(smtp_port=…)`` and ``dataclasses.replace(settings, smtp_port=…)`` keep
    # working, with the deprecation warning; mypy sees only the grouped constructor.
    _dataclass_init = Settings.__init__

    @functools.wraps(_dataclass_init)
    def _init(self: Settings, *args: Any, **kwargs: Any) -> None:
        flat = {name: kwargs.pop(name) for name in list(kwargs) if name in FLAT_NAMES}
        _dataclass_init(self, *args, **_grouped(flat, kwargs))

    Settings.__init__ = _init


def catalog_path_from(env: PrefixedEnvironment, given: str | Path | None = None) -> Path:
    """The catalog a process uses, absolute: ``given`` (a ``--config`` flag), else
    ``ORDERTASKS_CONFIG``, else ``infra/tasks.toml``.

    A relative path is taken from the working directory now, so a child started elsewhere
    (``ordertasks dev`` runs its parts from the repository root) reads the same file.
    """
    chosen = Path(given).expanduser() if given is not None else env.path("CONFIG") or DEFAULT_CATALOG
    return chosen.absolute()


def configured_catalog_path(given: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """``catalog_path_from`` over ``environ`` (default ``os.environ``) alone: for ``ordertasks dev``
    and ``ordertasks deploy``, which choose a catalog without reading the other settings."""
    return catalog_path_from(PrefixedEnvironment(os.environ if environ is None else environ), given)


def webhook_environment(env: Mapping[str, str], catalog_path: Path) -> dict[str, str]:
    """The variables webhooks may read: ``ORDERTASKS_*`` and every name the catalog refers to."""
    from ordertasks.handlers.config import ENV_REFERENCE, TOKEN_ENV, catalog_texts

    try:
        text = "\n".join(catalog_texts(catalog_path))   # every file of an extends chain
    except ConfigurationError:
        text = ""  # load_catalog reports the missing or invalid file with its own message
    tokens = set(TOKEN_ENV.findall(text))
    named = {m.group(1) for m in ENV_REFERENCE.finditer(text)} | tokens
    environment = {k: v for k, v in env.items() if k in named or k.startswith("ORDERTASKS_")}
    refuse_unsendable_tokens(environment, tokens | {k for k in environment if k.endswith(TOKEN_SUFFIX)})
    return environment


def refuse_unsendable_tokens(environment: Mapping[str, str], names: set[str]) -> None:
    """``ConfigurationError`` naming the first token variable that cannot go into an HTTP header
    (a trailing newline, as ``echo`` adds to a secret, is the usual cause); never quotes the token.

    Checked: every variable a catalog ``token_env`` names, and every ``ORDERTASKS_*_TOKEN``.
    """
    for name in sorted(names):
        problem = unsendable(environment[name]) if environment.get(name) else None
        if problem:
            raise ConfigurationError(f"{name} {problem}: a token is sent in an HTTP header, so it must be one "
                                     "line without surrounding white space; store the secret again without "
                                     "it (printf '%s' \"$TOKEN\" adds no newline; echo does)")


def refuse_open(settings: Settings) -> Settings:
    """Refuse combinations that would run a deployment open; warn about local-only choices."""
    if not settings.oidc.verify:
        if settings.backend == Backend.CLOUD:
            raise ConfigurationError("ORDERTASKS_OIDC_VERIFY=false is refused with ORDERTASKS_BACKEND=cloud: "
                                     "the handler and /internal/* must verify Cloud Tasks' OIDC tokens")
        log.warning("ORDERTASKS_OIDC_VERIFY is off: the handler and /internal/* accept unauthenticated "
                    "requests (local use only)")
    return settings
