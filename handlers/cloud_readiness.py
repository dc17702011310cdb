"""No loopback defaults in the cloud: what a deployable lacks before it may start there.

Every local default points at loopback (the SMTP sink on 127.0.0.1:1025, the warehouse
stand-in on 127.0.0.1:8090, the local payment gateway). In the cloud such a default is a
silent failure: every email and warehouse task would retry, then land in the failed-task log.
So with ``ORDERTASKS_BACKEND=cloud`` the handler and the checkout call
``require_cloud_ready`` at start and refuse to run, naming every setting that is unset or
points at loopback, an unspecified address or a link-local one (the metadata server), in any
spelling the resolver accepts (``local_kind``). ``cloud_problems`` lists them; ``ordertasks
deploy plan`` makes the same demands of the catalog's ``[cloud]`` section before it prints anything.

What each deployable needs:

- both: ``ORDERTASKS_PROJECT``; ``ORDERTASKS_HANDLER_URL`` (the OIDC audience, and where
  the checkout's tasks go) not on loopback.
- ``handler``: the SMTP relay (host not loopback, a password with a username, TLS when it
  logs in), a real sender address, the warehouse URL, and for each webhook kind its URL and
  the token variable it names. A webhook URL written as a private address (``10.0.0.5``)
  needs ``allow_private`` in its table, as the webhook client would refuse it on every call.
- ``maintenance`` (``run_maintenance``, reconcile and sweep for Cloud Scheduler): nothing
  more; it only enqueues tasks and reads the stores.
- all three verify OIDC tokens: ``ORDERTASKS_OIDC_CERTS_URL`` is Google's (the default), or an
  https URL on a public name that ``ORDERTASKS_OIDC_ALLOWED_CERTS_URL`` names too; never plain
  http, loopback, an IP address or the metadata server (``token_problems``).
- ``checkout``: ``ORDERTASKS_CHECKOUT_URL``, its own https URL, the audience of ``/internal/*``
  (unset, it would expect the local ``http://127.0.0.1:8080/``).
- ``checkout``: a payment processor: ``ORDERTASKS_PAYMENTS=stripe`` (the cloud default) with
  its secret key and webhook signing secret (``local`` only with
  ``ORDERTASKS_ALLOW_TEST_PAYMENTS=true``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import urlsplit

from ordertasks.handlers.addresses import AddressPolicy, internal_kind, literal_address
from ordertasks.handlers.config import ENV_REFERENCE as VARIABLE
from ordertasks.handlers.config import Settings, WebhookConfig
from ordertasks.handlers.errors import ConfigurationError
from ordertasks.handlers.redact import redact_url
from ordertasks.handlers.registry import KindRegistry
from ordertasks.handlers.settings import GOOGLE_CERTS_URL, Backend, PaymentProcessor, TasksSettings

DEPLOYABLES = ("handler", "maintenance", "checkout")
EXAMPLE_SENDER = "@shop.example>"
CLOUD_UNREACHABLE = frozenset({"loopback", "unspecified", "link-local"})


def local_kind(host: str | None) -> str | None:
    """Why nothing in the cloud answers at ``host``: ``"loopback"`` (also an empty host,
    ``localhost`` and ``*.localhost``), ``"unspecified"`` or ``"link-local"`` (the metadata
    server 169.254.169.254 among them); ``None`` for any other host.

    A numeric host is read as the resolver reads it (``handlers/addresses.py``): ``127.1``,
    ``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``[::ffff:127.0.0.1]`` and ``0`` are all
    caught. Names are not looked up here; the webhook client checks what they resolve to.
    """
    name = (host or "").strip().rstrip(".").lower()
    if name in ("", "localhost") or name.endswith(".localhost"):
        return "loopback"
    address = literal_address(name)
    kind = internal_kind(address) if address is not None else None
    return kind if kind in CLOUD_UNREACHABLE else None


def is_loopback(host: str | None) -> bool:
    """True for an empty host, ``localhost`` or any spelling of a loopback or unspecified address."""
    return local_kind(host) in ("loopback", "unspecified")


def url_kind(url: str | None) -> str | None:
    """Why ``url`` cannot be a cloud target: ``"unset"`` (also: not http(s)), or its host's ``local_kind``."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https"):
        return "unset"
    return local_kind(parts.hostname)


def url_is_loopback(url: str | None) -> bool:
    """True when ``url`` is unset, not http(s), or its host is loopback or unspecified."""
    return url_kind(url) in ("unset", "loopback", "unspecified")


def _unfit(kind: str | None) -> str:
    """How a problem names what is wrong with a value of ``kind`` (see ``url_kind``)."""
    if kind == "link-local":
        return "link-local (169.254.0.0/16, where the metadata server answers)"
    return "unset or loopback"


def _common(settings: Settings) -> Iterator[str]:
    if not settings.project:
        yield "ORDERTASKS_PROJECT is not set: the Google Cloud project id"
    if kind := url_kind(settings.tasks.handler_url):
        yield (f"ORDERTASKS_HANDLER_URL is {_unfit(kind)} ({settings.tasks.handler_url}): set the handler "
               "function's https URL (tasks go there; it is also the OIDC audience)")


def _smtp(settings: Settings) -> Iterator[str]:
    if kind := local_kind(settings.smtp.host):
        yield (f"ORDERTASKS_SMTP_HOST is {_unfit(kind)} ({settings.smtp.host}): set your SMTP relay's "
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
        if not missing:
            yield from _webhook_url(name, webhook, url)
        if webhook.token_env and not webhook.token_optional and not lookup(webhook.token_env):
            yield (f"{webhook.token_env} is not set: [kinds.{name}.webhook] token_env names it; "
                   "mount it from Secret Manager")


def _webhook_url(name: str, webhook: WebhookConfig, url: str) -> Iterator[str]:
    """A webhook's URL must reach a public host, or a private one its table allows."""
    named = [m.group(1) for m in VARIABLE.finditer(webhook.url)]
    shown = redact_url(url)
    if kind := url_kind(url):
        subject = f"{named[0]} is {_unfit(kind)}" if named else f"[kinds.{name}.webhook] url is {_unfit(kind)}"
        yield f"{subject} ({shown}): set the https URL that [kinds.{name}.webhook] posts to"
        return
    address = literal_address(urlsplit(url).hostname)
    refused = AddressPolicy.for_backend(True, webhook.allow_private).refusal(address) if address else None
    if refused:
        subject = named[0] if named else f"[kinds.{name}.webhook] url"
        yield (f"{subject} points at a {refused} address ({shown}), which the handler does not call in the "
               f"cloud: allow it with allow_private = true (or a list of networks) in [kinds.{name}.webhook]")


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
    if settings.payment.stripe_api_base and url_kind(settings.payment.stripe_api_base):
        yield (f"ORDERTASKS_STRIPE_API_BASE points at loopback ({settings.payment.stripe_api_base}): "
               "a test-only setting; unset it")


# --- where tokens are checked against: the certificates URL, the checkout's audience ------

INTERNAL_NAMES = ("localhost", "metadata")
INTERNAL_SUFFIXES = (".localhost", ".internal")   # metadata.google.internal, VM and VPC names


def public_https_flaw(url: str) -> str | None:
    """Why ``url`` cannot be trusted in the cloud as a key source or an audience, or ``None``:
    it must be https to a public DNS name (no IP address in any spelling, no internal name)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        return "not an http(s) URL with a host"
    if host in INTERNAL_NAMES or host.endswith(INTERNAL_SUFFIXES):
        return "on an internal name (loopback or the metadata server)"
    address = literal_address(host)
    if address is not None:
        return f"on an IP address ({internal_kind(address) or 'public'}), not a name"
    return None if parts.scheme == "https" else f"{parts.scheme or 'without a scheme'}, not https"


def _certs_url(settings: Settings) -> Iterator[str]:
    """Token-signing keys come from Google's certificates URL, or one explicitly allowed https URL."""
    url, allowed = settings.oidc.certs_url, settings.oidc.allowed_certs_url
    if url == GOOGLE_CERTS_URL:
        return
    flaw = public_https_flaw(url)
    if flaw:
        yield (f"ORDERTASKS_OIDC_CERTS_URL is {flaw} ({url[:200]}): tokens would be checked against keys "
               f"served there; unset it (Google's {GOOGLE_CERTS_URL} is the default)")
    elif url != allowed:
        yield (f"ORDERTASKS_OIDC_CERTS_URL is not Google's ({url[:200]}): tokens would be checked against keys "
               f"served there; unset it to use {GOOGLE_CERTS_URL}, or, if that https source is meant, set "
               "ORDERTASKS_OIDC_ALLOWED_CERTS_URL to the same URL")


def _checkout_audience(settings: Settings) -> Iterator[str]:
    """``/internal/*`` accepts tokens minted for ``ORDERTASKS_CHECKOUT_URL``: it must be the service's own URL."""
    url = settings.tasks.checkout_url
    flaw = "unset or the local default" if url == TasksSettings.checkout_url else public_https_flaw(url)
    if flaw:
        yield (f"ORDERTASKS_CHECKOUT_URL is {flaw} ({url[:200]}; /internal/* expects tokens with that audience): "
               "set the checkout service's https URL, e.g. https://ordertasks-checkout-PROJECT_NUMBER.REGION.run.app "
               "(`ordertasks deploy` sets it)")


def token_problems(settings: Settings, deployable: str) -> list[str]:
    """What would let the wrong tokens in: every deployable's certificates URL, the checkout's audience."""
    problems = list(_certs_url(settings))
    if deployable == "checkout":
        problems += _checkout_audience(settings)
    return problems


def cloud_problems(settings: Settings, deployable: str = "handler") -> list[str]:
    """Every setting ``deployable`` (``handler`` | ``checkout``) lacks to run in the cloud, one line each."""
    if deployable not in DEPLOYABLES:
        raise ValueError(f"deployable must be one of {DEPLOYABLES}, not {deployable!r}")
    problems = list(_common(settings)) + token_problems(settings, deployable)
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
