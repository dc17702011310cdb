"""No loopback defaults in the cloud: what a deployable lacks before it may start there.

Every local default points at loopback (the SMTP sink on 127.0.0.1:1025, the warehouse
stand-in on 127.0.0.1:8090, the local payment gateway). In the cloud such a default is a
silent failure: every email and warehouse task would retry, then land in the failed-task log.
So with ``ORDERTASKS_BACKEND=cloud`` the handler and the checkout call
``require_cloud_ready`` at start and refuse to run, naming every setting that is unset or
points at loopback. ``cloud_problems`` lists them; ``ordertasks deploy plan`` makes the same
demands of the catalog's ``[cloud]`` section before it prints anything.

What each deployable needs:

- both: ``ORDERTASKS_PROJECT``; ``ORDERTASKS_HANDLER_URL`` (the OIDC audience, and where
  the checkout's tasks go) not on loopback.
- ``handler``: the SMTP relay (host not loopback, a password with a username, TLS when it
  logs in), a real sender address, the warehouse URL, and for each webhook kind its URL and
  the token variable it names.
- ``maintenance`` (``run_maintenance``, reconcile and sweep for Cloud Scheduler): nothing
  more; it only enqueues tasks and reads the stores.
- ``checkout``: a payment processor: ``ORDERTASKS_PAYMENTS=stripe`` (the cloud default) with
  its secret key and webhook signing secret (``local`` only with
  ``ORDERTASKS_ALLOW_TEST_PAYMENTS=true``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import urlsplit

from ordertasks.handlers.config import ENV_REFERENCE as VARIABLE
from ordertasks.handlers.config import Settings, WebhookConfig
from ordertasks.handlers.errors import ConfigurationError
from ordertasks.handlers.registry import KindRegistry
from ordertasks.handlers.settings import Backend, PaymentProcessor

DEPLOYABLES = ("handler", "maintenance", "checkout")
EXAMPLE_SENDER = "@shop.example>"


def is_loopback(host: str | None) -> bool:
    """True for an empty host, ``localhost`` or a loopback/unspecified IP address."""
    name = (host or "").strip().strip("[]").lower()
    if name in ("", "localhost") or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def url_is_loopback(url: str | None) -> bool:
    """True when ``url`` is unset, not http(s), or its host is loopback."""
    parts = urlsplit(url or "")
    return parts.scheme not in ("http", "https") or is_loopback(parts.hostname)


def _common(settings: Settings) -> Iterator[str]:
    if not settings.project:
        yield "ORDERTASKS_PROJECT is not set: the Google Cloud project id"
    if url_is_loopback(settings.tasks.handler_url):
        yield (f"ORDERTASKS_HANDLER_URL is unset or loopback ({settings.tasks.handler_url}): set the handler "
               "function's https URL (tasks go there; it is also the OIDC audience)")


def _smtp(settings: Settings) -> Iterator[str]:
    if is_loopback(settings.smtp.host):
        yield (f"ORDERTASKS_SMTP_HOST is unset or loopback ({settings.smtp.host}): set your SMTP relay's "
               "host (and ORDERTASKS_SMTP_PORT, 587 for STARTTLS or 465 for implicit TLS)")
    if settings.smtp.username and not settings.smtp.password:
        yield ("ORDERTASKS_SMTP_PASSWORD is not set while ORDERTASKS_SMTP_USERNAME is: mount it from "
               "Secret Manager")
    if settings.smtp.username and not (settings.smtp.starttls or settings.smtp.implicit_tls):
        yield ("ORDERTASKS_SMTP_STARTTLS and ORDERTASKS_SMTP_IMPLICIT_TLS are both off: the SMTP "
               "password would cross the network in clear; leave TLS on (the cloud default)")
    if settings.smtp.mail_from.endswith(EXAMPLE_SENDER):
        yield (f"ORDERTASKS_MAIL_FROM is unset ({settings.smtp.mail_from}, an example address relays "
               "refuse): set the shop's sender, e.g. \"My Shop <orders@my-shop.com>\"")


def expand(text: str, lookup: Callable[[str], str | None]) -> tuple[str, list[str]]:
    """``text`` with ``${NAME}`` / ``${NAME:-default}`` filled in, and the names that had no value."""
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        value = lookup(match.group(1)) or match.group(2)
        if value is None:
            missing.append(match.group(1))
        return value or ""
    return VARIABLE.sub(fill, text), missing


def _webhooks(settings: Settings, targets: Mapping[str, WebhookConfig]) -> Iterator[str]:
    """Every webhook kind (the warehouse notification included) needs a reachable URL."""
    lookup = settings.environment.get
    for name, webhook in targets.items():
        url, missing = expand(webhook.url, lookup)
        yield from (f"{variable} is not set: [kinds.{name}.webhook] url names it" for variable in missing)
        if not missing and url_is_loopback(url):
            named = [m.group(1) for m in VARIABLE.finditer(webhook.url)]
            subject = f"{named[0]} is unset or loopback" if named else f"[kinds.{name}.webhook] url is loopback"
            yield f"{subject} ({url}): set the https URL that [kinds.{name}.webhook] posts to"
        if webhook.token_env and not webhook.token_optional and not lookup(webhook.token_env):
            yield (f"{webhook.token_env} is not set: [kinds.{name}.webhook] token_env names it; "
                   "mount it from Secret Manager")


def _payments(settings: Settings) -> Iterator[str]:
    processor = settings.payment_processor   # stripe unless ORDERTASKS_PAYMENTS says otherwise
    if processor is PaymentProcessor.LOCAL and not settings.payment.allow_test_payments:
        yield ("ORDERTASKS_PAYMENTS=local takes no money: set stripe, or ORDERTASKS_ALLOW_TEST_PAYMENTS=true "
               "for a test deployment (its orders are marked test)")
    if processor is not PaymentProcessor.STRIPE:
        return
    for value, variable in ((settings.payment.stripe_secret_key, "ORDERTASKS_STRIPE_SECRET_KEY"),
                            (settings.payment.stripe_webhook_secret, "ORDERTASKS_STRIPE_WEBHOOK_SECRET")):
        if not value:
            yield f"{variable} is not set: mount it from Secret Manager"
    if settings.payment.stripe_api_base and url_is_loopback(settings.payment.stripe_api_base):
        yield (f"ORDERTASKS_STRIPE_API_BASE points at loopback ({settings.payment.stripe_api_base}): "
               "a test-only setting; unset it")


def cloud_problems(settings: Settings, deployable: str = "handler") -> list[str]:
    """Every setting ``deployable`` (``handler`` | ``checkout``) lacks to run in the cloud, one line each."""
    if deployable not in DEPLOYABLES:
        raise ValueError(f"deployable must be one of {DEPLOYABLES}, not {deployable!r}")
    problems = list(_common(settings))
    if deployable == "handler":
        targets = KindRegistry.from_catalog(settings.catalog()).webhooks
        problems += [*_smtp(settings), *_webhooks(settings, targets)]
    elif deployable == "checkout":
        problems += list(_payments(settings))
    return problems


def deployable_of(settings: Settings) -> str:
    """Which function this process serves: Cloud Run functions name it in ``FUNCTION_TARGET``."""
    return "maintenance" if settings.function_target == "run_maintenance" else "handler"


def require_cloud_ready(settings: Settings, deployable: str) -> None:
    """With ``ORDERTASKS_BACKEND=cloud``, raise ``ConfigurationError`` naming every problem; else nothing."""
    if settings.backend is not Backend.CLOUD:
        return
    problems = cloud_problems(settings, deployable)
    if problems:
        raise ConfigurationError(f"the {deployable} refuses to start with ORDERTASKS_BACKEND=cloud "
                                 f"({len(problems)} setting(s) to fix):\n" + "\n".join(f"  - {p}" for p in problems))
