"""The one place that builds stores, the OIDC verifier and the effects' clients from ``Settings``.

Both deployables use it: the handler (``functions/main.py``) and the producer side (the
library API, the checkout, the CLI) — store selection and OIDC set-up are written once.

| port | local (the embedded default) | cloud |
|---|---|---|
| stores (effects, failed log, analytics, orders) | SQLite file | Firestore |
| invoice blobs | a directory | GCS bucket |
| OIDC certificates | the local Cloud Tasks emulator's | Google's |
| mail | SMTP on loopback (the dev stack's sink) | the SMTP relay from settings |
| webhooks (warehouse, shop's own) | the catalog's URLs, ``${VAR}`` expanded | the same |
"""

from __future__ import annotations

from collections.abc import Mapping

from ordertasks.handlers.addresses import AddressPolicy
from ordertasks.handlers.config import Catalog, Settings, expand
from ordertasks.handlers.dispatch import Dispatcher
from ordertasks.handlers.errors import ConfigurationError
from ordertasks.handlers.effect_records import RecordedEffects
from ordertasks.handlers.kind import Effect, EffectContext, FarEnds, Seller, SystemClock
from ordertasks.handlers.oidc import CertCache, TokenVerifier
from ordertasks.handlers.ports import AnalyticsStore, BlobStore, Clock, WebhookClient
from ordertasks.handlers.ports import Stores as Stores  # where callers import it from
from ordertasks.handlers.redact import redact_url
from ordertasks.handlers.registry import KindRegistry
from ordertasks.handlers.settings import Backend
from ordertasks.handlers.tracing import NO_TRACING, Tracing


def build_stores(settings: Settings) -> Stores:
    """The configured backend's store ports: Firestore in the cloud, a SQLite file locally."""
    if settings.backend is Backend.CLOUD:
        from google.cloud import firestore

        from ordertasks.handlers.backends import firestore as firestore_backend

        client = firestore.Client(project=settings.project, database=settings.store.firestore_database)
        return firestore_backend.stores(firestore_backend.FirestoreDatabase(client))
    from ordertasks.handlers.backends import sqlite

    settings.store.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    return sqlite.stores(sqlite.open_database(settings.store.sqlite_file))


def build_blobs(settings: Settings, catalog: Catalog) -> BlobStore:
    """The invoice bucket (GCS) or its local directory."""
    if settings.backend is Backend.CLOUD:
        from google.cloud import storage  # type: ignore[attr-defined]

        from ordertasks.handlers.backends.gcs import GcsBlobStore

        bucket = settings.store.invoice_bucket or catalog.invoice_bucket
        return GcsBlobStore(storage.Client(project=settings.project), bucket)
    from ordertasks.handlers.backends.localdir import LocalDirBlobStore

    return LocalDirBlobStore(settings.store.blob_root)


def recorded_effects(settings: Settings, stores: Stores, catalog: Catalog | None = None) -> RecordedEffects:
    """The effect store every status view reads: the idempotency store plus the far ends of the
    create-once kinds that keep their done mark there (``handlers.effect_records``)."""
    catalog = catalog or settings.catalog()
    kinds = KindRegistry.from_catalog(catalog)
    ends = FarEnds(blobs=build_blobs(settings, catalog), analytics=stores.analytics)
    return RecordedEffects(stores.effects, kinds.done_records, ends)


def build_verifier(settings: Settings, catalog: Catalog, audience: str | None = None) -> TokenVerifier | None:
    """The OIDC verifier for ``audience`` (default: the handler's); ``None`` only when
    ``ORDERTASKS_OIDC_VERIFY=false`` says so.

    Allowed callers: ``ORDERTASKS_OIDC_ALLOWED_EMAILS``, else only the dispatcher service
    account — never "any verified Google account".
    """
    if not settings.oidc.verify:
        return None
    return token_verifier(settings, catalog, audience or settings.audience)


def token_verifier(settings: Settings, catalog: Catalog, audience: str) -> TokenVerifier:
    """A verifier of tokens for ``audience`` from the allowed callers (see ``build_verifier``)."""
    allowed = settings.oidc.allowed_emails or (catalog.service_account_email("dispatcher"),)
    return TokenVerifier(CertCache(settings.certs_url), audiences=[audience], allowed_emails=allowed)


def build_webhooks(settings: Settings, kinds: KindRegistry) -> dict[str, WebhookClient]:
    """One HTTP client per webhook kind; ``ConfigurationError`` naming a URL that cannot work."""
    from ordertasks.handlers.backends.http import HttpWebhookClient

    clients: dict[str, WebhookClient] = {}
    for name, target in kinds.webhooks.items():
        where = f"[kinds.{name}.webhook]"
        url = expand(target.url, settings.environment, f"{where} url")
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"{where} url {redact_url(url)[:200]!r} must start with http:// or https://")
        token = settings.environment.get(target.token_env) if target.token_env else None
        # In the cloud only public addresses, unless the catalog allows more (handlers/addresses.py).
        addresses = AddressPolicy.for_backend(settings.backend is Backend.CLOUD, target.allow_private)
        clients[name] = HttpWebhookClient(url, timeout=_timeout(target.timeout_seconds, settings, where),
                                          token=token or None, name=name.replace("_", " "),
                                          max_answer_bytes=target.max_answer_bytes, addresses=addresses)
    return clients


def _timeout(value: float | str, settings: Settings, where: str) -> float:
    text = expand(value, settings.environment, f"{where} timeout_seconds") if isinstance(value, str) else value
    try:
        seconds = float(text)
    except ValueError:
        raise ConfigurationError(f"{where} timeout_seconds {text!r} is not a number of seconds") from None
    if not 0 < seconds <= 1800:
        raise ConfigurationError(f"{where} timeout_seconds must be between 0 and 1800, not {seconds}")
    return seconds


def build_context(settings: Settings, catalog: Catalog, kinds: KindRegistry, analytics: AnalyticsStore,
                  clock: Clock) -> EffectContext:
    """Mailer, blob store, webhook clients and seller details for the effects."""
    from ordertasks.handlers.backends.smtp import SmtpMailer

    mailer = SmtpMailer(settings.smtp.host, settings.smtp.port, username=settings.smtp.username,
                        password=settings.smtp.password, starttls=settings.smtp.starttls,
                        implicit_tls=settings.smtp.implicit_tls,
                        timeout=settings.smtp.timeout_seconds)
    seller = Seller(settings.seller.name, settings.seller.address, settings.seller.tax_id, settings.smtp.mail_from)
    return EffectContext(mailer=mailer, blobs=build_blobs(settings, catalog), analytics=analytics, clock=clock,
                         seller=seller, analytics_shards=catalog.analytics_shards,
                         webhooks=build_webhooks(settings, kinds), email=catalog.email)


def check_startup(settings: Settings) -> KindRegistry:
    """What every process checks before it serves: the catalog's kinds resolve and their
    webhook targets can be built. Raises ``ConfigurationError`` (``CatalogError``) naming
    the file, the line and what to fix."""
    kinds = KindRegistry.from_catalog(settings.catalog())
    build_webhooks(settings, kinds)
    return kinds


def build_dispatcher(settings: Settings, *, stores: Stores | None = None, clock: Clock | None = None,
                     effects: Mapping[str, Effect] | None = None, context: EffectContext | None = None,
                     kinds: KindRegistry | None = None, tracing: Tracing = NO_TRACING) -> Dispatcher:
    """A ``Dispatcher`` over the configured stores and the catalog's kinds.

    Tests pass their own parts; ``effects`` replaces the perform of the kinds it names;
    ``kinds`` replaces the registry (e.g. ``KindRegistry.with_claims()``, the protocol before 0.3);
    ``tracing`` (``handlers.tracing``) spans the dispatch and wraps the far ends in client spans.
    """
    catalog = settings.catalog()
    kinds = kinds or KindRegistry.from_catalog(catalog)
    if effects:
        kinds = kinds.with_effects(effects)
    clock = clock or SystemClock()
    stores = stores or build_stores(settings)
    ctx = tracing.instrument(context or build_context(settings, catalog, kinds, stores.analytics, clock))
    return Dispatcher(kinds, ctx, stores.effects, stores.failed, stores.orders, catalog, clock, attempts=stores.attempts,
                      tracing=tracing)
