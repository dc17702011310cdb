"""The one place the handler deployable chooses its backends, from ``Settings``.

local (the embedded default): SQLite file, blob directory, SMTP on loopback, the warehouse
stand-in, certificates from the local Cloud Tasks emulator. cloud: Firestore, GCS, the SMTP
relay and the warehouse API from settings, Google's certificates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers.cloud_readiness import require_cloud_ready
from handlers.dispatch import Dispatcher
from handlers.errors import ConfigurationError
from handlers.oidc import CertCache, TokenVerifier
from handlers.ports import AnalyticsStore, BlobStore, Clock, EffectStore, FailedTaskStore
from handlers.registry import Effect, EffectContext, Seller, SystemClock, default_effects
from infra.config import Catalog, Settings


def build_stores(settings: Settings) -> Any:
    """One object implementing every store port, for the configured backend."""
    if settings.backend == "cloud":
        from google.cloud import firestore

        from handlers.backends.firestore import FirestoreStore

        client = firestore.Client(project=settings.project, database=settings.firestore_database)
        return FirestoreStore(client)
    from handlers.backends.sqlite import SqliteStore

    settings.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    return SqliteStore(settings.sqlite_file)


def build_blobs(settings: Settings, catalog: Catalog) -> BlobStore:
    """The invoice bucket (GCS) or its local directory."""
    if settings.backend == "cloud":
        from google.cloud import storage  # type: ignore[attr-defined]

        from handlers.backends.gcs import GcsBlobStore

        return GcsBlobStore(storage.Client(project=settings.project), settings.invoice_bucket or catalog.invoice_bucket)
    from handlers.backends.localdir import LocalDirBlobStore

    return LocalDirBlobStore(settings.blob_root)


def build_verifier(settings: Settings, catalog: Catalog) -> TokenVerifier | None:
    """The OIDC verifier; ``None`` only when ``ORDERTASKS_OIDC_VERIFY=false`` says so, locally."""
    if not settings.oidc_verify:
        if settings.backend == "cloud":
            raise ConfigurationError("OIDC verification cannot be turned off with the cloud backend")
        return None
    allowed = settings.oidc_allowed_emails or (catalog.service_account_email("dispatcher"),)
    return TokenVerifier(CertCache(settings.certs_url), audiences=[settings.audience], allowed_emails=allowed)


def build_context(settings: Settings, catalog: Catalog, analytics: AnalyticsStore, clock: Clock) -> EffectContext:
    """Mailer, warehouse client, blob store and seller details for the effects."""
    from handlers.backends.http import HttpWarehouseClient
    from handlers.backends.smtp import SmtpMailer

    mailer = SmtpMailer(settings.smtp_host, settings.smtp_port, username=settings.smtp_username,
                        password=settings.smtp_password, starttls=settings.smtp_starttls,
                        implicit_tls=settings.smtp_implicit_tls,
                        timeout=settings.smtp_timeout_seconds)
    warehouse = HttpWarehouseClient(settings.warehouse_url, timeout=settings.warehouse_timeout_seconds,
                                    token=settings.warehouse_token)
    seller = Seller(settings.seller_name, settings.seller_address, settings.seller_tax_id, settings.mail_from)
    return EffectContext(mailer=mailer, warehouse=warehouse, blobs=build_blobs(settings, catalog),
                         analytics=analytics, clock=clock, seller=seller, analytics_shards=catalog.analytics_shards)


def build_dispatcher(settings: Settings, *, stores: Any = None, clock: Clock | None = None,
                     effects: Mapping[str, Effect] | None = None, context: EffectContext | None = None) -> Dispatcher:
    """A ``Dispatcher`` over the configured stores and effects (tests pass their own parts)."""
    catalog = settings.catalog()
    clock = clock or SystemClock()
    stores = stores or build_stores(settings)
    effect_store: EffectStore = stores
    failed_store: FailedTaskStore = stores
    ctx = context or build_context(settings, catalog, stores, clock)
    return Dispatcher(effects or default_effects(), ctx, effect_store, failed_store, catalog, clock)


def build_handler(settings: Settings, **parts: Any) -> Any:
    """The callable functions-framework serves (``functions.main.TaskHandler``)."""
    from functions.main import TaskHandler

    require_cloud_ready(settings, "handler")
    dispatcher = build_dispatcher(settings, **parts)
    catalog = dispatcher.catalog
    return TaskHandler(dispatcher, build_verifier(settings, catalog), catalog.project)
