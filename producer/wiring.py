"""Choose the checkout's backends from ``Settings``: the only place that knows local vs cloud.

| port | local (embedded default) | cloud |
|---|---|---|
| stores (orders, effects, failed log, analytics) | ``handlers.backends.sqlite`` on ``settings.store.sqlite_file`` | ``handlers.backends.firestore`` on ``settings.project`` |
| Cloud Tasks | gRPC (insecure channel) or REST client on the emulator, no credentials | default client and credentials, gRPC unless REST is chosen |
| price book | ``SqlitePriceBook`` in the same file as the order store | ``FirestorePriceBook`` (``products/{sku}``) |
| payment ledger | ``SqliteLedger`` in the order store's file | ``FirestoreLedger`` (``payments/{order_id}``) |
| payments (``ORDERTASKS_PAYMENTS``) | ``local``: ``LocalGateway`` on the ledger; ``stripe`` if set | ``stripe``: ``StripeGateway``; ``local`` only with ``ORDERTASKS_ALLOW_TEST_PAYMENTS=true`` (orders marked test) |
| OIDC for ``/internal/reconcile`` | emulator-signed tokens, ``settings.oidc.certs_url`` | Google's certs |

The Cloud Tasks client also goes to the emulator whenever ``CLOUD_TASKS_EMULATOR_HOST`` is
set, as Firebase's tools do: the Python client has no such variable of its own.
"""

from __future__ import annotations

import logging
from typing import Any

from ordertasks.handlers.config import Settings
from ordertasks.handlers.errors import ConfigurationError
from ordertasks.handlers.kind import SystemClock
from ordertasks.handlers.oidc import TokenVerifier
from ordertasks.handlers.ports import Clock, OrderStore
from ordertasks.handlers.settings import Backend, PaymentProcessor, TasksTransport
from ordertasks.handlers.wiring import build_stores as build_stores  # the checkout's stores, chosen once for all
from ordertasks.handlers.wiring import token_verifier
from ordertasks.producer.enqueue import Enqueuer
from ordertasks.producer.ledger import PaymentLedger
from ordertasks.producer.payments import LocalGateway, PaymentGateway
from ordertasks.producer.pricebook import PriceBook

log = logging.getLogger("ordertasks.producer.wiring")

DEFAULT_EMULATOR_HOST = "127.0.0.1:8123"
EMULATOR_CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                            ("grpc.max_reconnect_backoff_ms", 1000)]


def clock() -> Clock:
    """The real clock."""
    return SystemClock()


def order_store(settings: Settings) -> OrderStore:
    """SQLite locally, Firestore in the cloud (chosen by ``handlers.wiring``, once for all)."""
    return build_stores(settings).orders


def price_book(settings: Settings) -> PriceBook:
    """The products the checkout prices carts from: the order store's SQLite file, or Firestore."""
    if settings.backend is Backend.CLOUD:
        from google.cloud import firestore

        from ordertasks.producer.pricebook_firestore import FirestorePriceBook

        database = settings.store.firestore_database
        return FirestorePriceBook(firestore.Client(project=settings.project, database=database))
    from ordertasks.producer.pricebook_sqlite import SqlitePriceBook

    settings.store.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    return SqlitePriceBook(settings.store.sqlite_file)


def emulator_host(settings: Settings) -> str | None:
    """``host:port`` of the Cloud Tasks emulator to use, or ``None`` for Google's service."""
    if settings.tasks.emulator_host:
        return settings.tasks.emulator_host
    return DEFAULT_EMULATOR_HOST if settings.backend is Backend.LOCAL else None


def tasks_client(settings: Settings) -> Any:
    """A ``CloudTasksClient`` over ``settings.tasks.transport`` (gRPC unless set to REST): on the
    emulator with an insecure channel (gRPC) or plain HTTP (REST) and no credentials, as in
    production otherwise, so the local path is the production path."""
    from google.cloud import tasks_v2

    host = emulator_host(settings)
    if host is None:
        return tasks_v2.CloudTasksClient(transport=str(settings.tasks.transport))
    if settings.tasks.transport is TasksTransport.GRPC:
        return _emulator_grpc_client(host)
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    endpoint = host if host.startswith(("http://", "https://")) else "http://" + host
    return tasks_v2.CloudTasksClient(transport="rest", credentials=AnonymousCredentials(),
                                     client_options=ClientOptions(api_endpoint=endpoint))


def _emulator_grpc_client(host: str) -> Any:
    import grpc
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    target = host.split("://", 1)[-1].rstrip("/")
    # A local emulator restarts often: reconnect within a second instead of gRPC's default
    # backoff of up to two minutes, so calls stop failing UNAVAILABLE soon after it is back.
    channel = grpc.insecure_channel(target, options=EMULATOR_CHANNEL_OPTIONS)
    return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))


def enqueuer(settings: Settings, client: Any = None) -> Enqueuer:
    """The enqueuer on the catalog of ``settings``."""
    return Enqueuer(client or tasks_client(settings), settings, settings.catalog())


def payment_ledger(settings: Settings) -> PaymentLedger:
    """The payment ledger, in the order store's database (never a side file)."""
    if settings.backend is Backend.CLOUD:
        from google.cloud import firestore

        from ordertasks.producer.ledger_firestore import FirestoreLedger

        return FirestoreLedger(firestore.Client(project=settings.project, database=settings.store.firestore_database))
    from ordertasks.producer.ledger_sqlite import SqliteLedger

    settings.store.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    return SqliteLedger(settings.store.sqlite_file)


def payment_gateway(settings: Settings, ledger: PaymentLedger | None = None) -> PaymentGateway:
    """Stripe, or the local gateway (in the cloud only with ORDERTASKS_ALLOW_TEST_PAYMENTS=true)."""
    if settings.payment_processor is PaymentProcessor.STRIPE:
        if not settings.payment.stripe_secret_key:
            raise ConfigurationError("ORDERTASKS_PAYMENTS=stripe needs ORDERTASKS_STRIPE_SECRET_KEY (mount it from "
                                     "Secret Manager; a test key sk_test_… locally)")
        from ordertasks.producer.stripe_gateway import StripeGateway

        return StripeGateway(settings.payment.stripe_secret_key, api_base=settings.payment.stripe_api_base,
                             timeout=settings.payment.stripe_timeout_seconds)
    if settings.backend is Backend.CLOUD and not settings.payment.allow_test_payments:
        raise ConfigurationError("ORDERTASKS_PAYMENTS=local takes no money and is refused with "
                                 "ORDERTASKS_BACKEND=cloud unless ORDERTASKS_ALLOW_TEST_PAYMENTS=true")
    if settings.test_payments:
        log.warning("test payments: the local gateway takes no money; every order is marked test")
    return LocalGateway(ledger=ledger or payment_ledger(settings), test=settings.test_payments)


def reconcile_verifier(settings: Settings) -> TokenVerifier:
    """Verifies the OIDC token on ``/internal/reconcile``.

    Audience: ``settings.tasks.checkout_url`` (``ORDERTASKS_CHECKOUT_URL``, as the Cloud Scheduler
    job sets it). Allowed callers: ``oidc_allowed_emails`` or else only the dispatcher
    service account, never "any verified Google account".
    """
    return token_verifier(settings, settings.catalog(), settings.tasks.checkout_url)
