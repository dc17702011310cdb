"""Verify the OIDC bearer token Cloud Tasks (or Cloud Scheduler) sends.

Checks, in order: a ``Bearer`` token is present and well formed; its header says RS256
(``none``, HS256 and every other algorithm are refused before any key is touched); the
signature verifies against the issuer's certificates (see ``CertCache``: cached for their
``max-age``, refetched for a new ``kid`` so key rotation works, but at most once per 30 s);
``iss`` is Google's (a string); ``iat``/``exp`` are finite numbers at most one hour apart
and within a small skew of now, ``nbf`` (if present) is not in the future; ``aud`` is ours
(a string). Any of those failing is ``Unauthenticated`` (401). A valid token whose
``email`` is not an allowed, verified service account is ``Forbidden`` (403). When the
certificates cannot be fetched and none are held, ``DependencyUnavailable`` (503 with
``Retry-After``): the caller is not at fault, and Cloud Tasks retries.

A token that passed every check is remembered by its SHA-256 digest until its ``exp`` (at
most five minutes, 4096 tokens): Cloud Tasks sends the same token with many dispatches, and
a repeat then costs a hash instead of an RS256 verification (``handlers/verified_tokens.py``).

Locally the Cloud Tasks emulator signs with its own key and serves its certificates at
``/oauth2/v1/certs``; the checks are identical and only ``certs_url`` differs.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import certifi
from google.auth import crypt

from ordertasks.handlers.errors import DependencyUnavailable, Forbidden, Unauthenticated
from ordertasks.handlers.verified_tokens import DEFAULT_MAX_AGE_SECONDS, DEFAULT_MAX_ENTRIES, VerifiedTokens

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
MAX_AGE = re.compile(r"max-age=(\d+)")
MIN_REFRESH_SECONDS = 30.0          # at most one certificates fetch per this interval
DEFAULT_MAX_AGE_SECONDS = 300.0     # when the certificates response carries no max-age
FETCH_TIMEOUT_SECONDS = 5.0
NO_KEYS_RETRY_SECONDS = 5.0         # with no keys at all, a failed fetch is retried this soon
MAX_CERTS_BYTES = 1 << 20           # Google's answer is ~2 KB; more is not a certificate set
MAX_LIFETIME_SECONDS = 3600.0       # Google's ID tokens live exactly one hour


@functools.cache
def _tls() -> ssl.SSLContext:
    """Certificate checks against certifi's roots, as the handler's other HTTPS clients use."""
    return ssl.create_default_context(cafile=certifi.where())


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _verifier_from_jwk(jwk: Mapping[str, Any]) -> crypt.RSAVerifier:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

    n = int.from_bytes(_b64decode(jwk["n"]), "big")
    e = int.from_bytes(_b64decode(jwk["e"]), "big")
    return crypt.RSAVerifier(RSAPublicNumbers(e, n).public_key())  # type: ignore[no-untyped-call]


def parse_certs(document: Mapping[str, Any]) -> dict[str, crypt.RSAVerifier]:
    """Key id → verifier from a PEM map (``/oauth2/v1/certs``) or a JWK set (``/v3/certs``)."""
    if "keys" in document:
        return {k["kid"]: _verifier_from_jwk(k) for k in document["keys"] if k.get("kty") == "RSA"}
    return {kid: crypt.RSAVerifier.from_string(pem) for kid, pem in document.items()}  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class _KeySet:
    """One fetched certificate document: key id → verifier, and when it goes stale."""

    keys: Mapping[str, crypt.RSAVerifier]
    fetched_at: float
    fresh_until: float


class CertCache:
    """The issuer's public keys, refetched at most once per ``min_refresh_seconds``.

    The keys are reused until the ``max-age`` of the certificates response (Google's is hours)
    and refetched after it, or earlier when a token names a ``kid`` we do not hold (key
    rotation) — but never more than once per ``min_refresh_seconds`` (30 s): a token with an
    unknown ``kid`` between refreshes is refused at once, without a fetch, so garbage tokens
    cannot turn into a flood of requests to the issuer. No lock is held while fetching: one
    caller fetches, the others keep using the keys already held (or, before the first fetch
    completes, wait for it up to the fetch timeout). A failed refresh keeps the old keys; with
    no keys at all it raises ``DependencyUnavailable`` (the handler answers 503, Retry-After).
    """

    def __init__(self, certs_url: str, fetch: Callable[[str], tuple[dict[str, Any], float]] | None = None,
                 monotonic: Callable[[], float] = time.monotonic, min_refresh_seconds: float = MIN_REFRESH_SECONDS,
                 fetch_timeout: float = FETCH_TIMEOUT_SECONDS) -> None:
        self.certs_url = certs_url
        self._fetch = fetch or self._http_fetch
        self._monotonic = monotonic
        self.min_refresh_seconds = min_refresh_seconds
        self._fetch_timeout = fetch_timeout
        self._keyset: _KeySet | None = None
        self._last_attempt: float | None = None
        self._fetching = False
        self._changed = threading.Condition()

    def _http_fetch(self, url: str) -> tuple[dict[str, Any], float]:
        # The standard library, not requests: a fetch every few hours needs no pool, and not
        # importing requests takes ~60 ms and ~3 MB off every new instance's first task.
        try:
            if not url.startswith(("https://", "http://")):
                raise ValueError("the certificates URL must be http(s)")
            tls = _tls() if url.startswith("https:") else None  # loading the CA roots costs ~2.5 MB
            with urllib.request.urlopen(url, timeout=self._fetch_timeout, context=tls) as resp:
                body = resp.read(MAX_CERTS_BYTES + 1)
                if len(body) > MAX_CERTS_BYTES:
                    raise ValueError(f"the answer is larger than {MAX_CERTS_BYTES} bytes")
                return json.loads(body), _max_age(resp.headers.get("Cache-Control", ""))
        except (OSError, ValueError) as exc:  # urllib.error.URLError and HTTPError are OSErrors
            raise DependencyUnavailable(f"cannot fetch OIDC certificates from {url}: {exc}",
                                        retry_after=self.min_refresh_seconds) from exc

    def key(self, kid: str | None) -> list[crypt.RSAVerifier]:
        """Verifiers to try for ``kid`` (all keys when ``None``); ``[]`` for an unknown kid."""
        keyset = self._current(kid)
        if kid is None:
            return list(keyset.keys.values())
        return [keyset.keys[kid]] if kid in keyset.keys else []

    def _current(self, kid: str | None) -> _KeySet:
        with self._changed:
            keyset, now = self._keyset, self._monotonic()
            if keyset is None and self._fetching:
                return self._await_first_fetch()
            if self._fetching or not self._needs_fetch(keyset, kid, now):
                return self._held(keyset)
            self._fetching, self._last_attempt = True, now
        return self._refresh(keyset)

    def _needs_fetch(self, keyset: _KeySet | None, kid: str | None, now: float) -> bool:
        if keyset is not None and now < keyset.fresh_until and (kid is None or kid in keyset.keys):
            return False
        interval = self.min_refresh_seconds if keyset is not None else NO_KEYS_RETRY_SECONDS
        return self._last_attempt is None or now - self._last_attempt >= interval

    def _held(self, keyset: _KeySet | None) -> _KeySet:
        if keyset is None:
            raise DependencyUnavailable(f"OIDC certificates from {self.certs_url} are unavailable (the last fetch "
                                        "failed)", retry_after=NO_KEYS_RETRY_SECONDS)
        return keyset

    def _await_first_fetch(self) -> _KeySet:
        """Called with the condition held; ``wait`` releases it while the fetcher works."""
        self._changed.wait_for(lambda: not self._fetching, timeout=self._fetch_timeout)
        if self._keyset is None:
            raise DependencyUnavailable(f"OIDC certificates from {self.certs_url} are not available yet",
                                        retry_after=self.min_refresh_seconds)
        return self._keyset

    def _refresh(self, held: _KeySet | None) -> _KeySet:
        fetched: _KeySet | None = None
        try:
            fetched = self._fetched()
        except DependencyUnavailable:
            if held is None:
                raise
            return held                     # keep verifying with the keys we have
        finally:
            self._finish(fetched)           # whatever happened, the next caller may fetch again
        return fetched

    def _fetched(self) -> _KeySet:
        document, max_age = self._fetch(self.certs_url)
        try:
            keys = parse_certs(document)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DependencyUnavailable(f"OIDC certificates from {self.certs_url} are malformed: {exc}",
                                        retry_after=self.min_refresh_seconds) from exc
        now = self._monotonic()
        return _KeySet(keys, now, now + max(self.min_refresh_seconds, max_age))

    def _finish(self, keyset: _KeySet | None) -> None:
        with self._changed:
            if keyset is not None:
                self._keyset = keyset
            self._fetching = False
            self._changed.notify_all()


def _max_age(cache_control: str) -> float:
    """Seconds the certificates may be reused, from ``Cache-Control`` (``no-cache`` → 0)."""
    if re.search(r"no-cache|no-store", cache_control):
        return 0.0
    match = MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else DEFAULT_MAX_AGE_SECONDS


def _signature_holds(verifier: crypt.RSAVerifier, signed: bytes, signature: bytes) -> bool:
    try:
        return bool(verifier.verify(signed, signature))
    except (ValueError, TypeError):
        return False


def _text_claim(claims: Mapping[str, Any], name: str) -> str | None:
    """A claim that must be a string (a list or object ``aud``/``iss`` is refused, not hashed)."""
    value = claims.get(name)
    return value if isinstance(value, str) else None


def _time_claim(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim: a finite int or float (``true``, ``Infinity`` and strings are refused)."""
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class Caller:
    """Who called, from a verified token."""

    email: str
    subject: str
    audience: str
    claims: Mapping[str, Any]


class TokenVerifier:
    """Verifies ``Authorization: Bearer <id token>`` headers (see module docstring)."""

    def __init__(self, certs: CertCache, audiences: Iterable[str], allowed_emails: Iterable[str] = (),
                 issuers: Iterable[str] = GOOGLE_ISSUERS, now: Callable[[], float] = time.time,
                 skew_seconds: float = 60.0, cache_size: int = DEFAULT_MAX_ENTRIES,
                 cache_max_age: float = DEFAULT_MAX_AGE_SECONDS) -> None:
        self.certs = certs
        self.audiences = {a for a in audiences if a} | {a.rstrip("/") for a in audiences if a}
        self.allowed_emails = frozenset(allowed_emails)
        self.issuers = frozenset(issuers)
        self._now = now
        self.skew = skew_seconds
        # Cloud Tasks reuses a token for many dispatches: a token that passed every check is
        # remembered by its digest until its exp (handlers/verified_tokens.py).
        self.verified: VerifiedTokens[Caller] = VerifiedTokens(now, max_entries=cache_size, max_age=cache_max_age)

    def verify(self, authorization: str | None) -> Caller:
        """Return the verified caller or raise ``Unauthenticated`` / ``Forbidden``."""
        token = self._bearer(authorization)
        caller = self.verified.get(token)
        if caller is None:
            caller = self._verify_fully(token)
            self.verified.remember(token, caller, float(caller.claims["exp"]))   # a finite number: checked
        return caller

    def _verify_fully(self, token: str) -> Caller:
        claims = self._verify_signature(token)
        self._check_claims(claims)
        return self._authorize(claims)

    @staticmethod
    def _bearer(authorization: str | None) -> str:
        if not authorization:
            raise Unauthenticated("missing Authorization header: expected 'Bearer <OIDC token>'")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authorization header must be 'Bearer <OIDC token>'")
        return token.strip()

    def _verify_signature(self, token: str) -> Mapping[str, Any]:
        header, claims, signed, signature = self._split(token)
        if header.get("alg") != "RS256":
            raise Unauthenticated(f"token algorithm {header.get('alg')!r} is not accepted; expected RS256")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("malformed token: kid must be a string")
        if not any(_signature_holds(v, signed, signature) for v in self.certs.key(kid)):
            raise Unauthenticated("token signature does not verify against the issuer's certificates")
        return claims

    @staticmethod
    def _split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
        parts = token.split(".")
        if len(parts) != 3:
            raise Unauthenticated("malformed token: expected three dot-separated segments")
        try:
            header = json.loads(_b64decode(parts[0]))
            claims = json.loads(_b64decode(parts[1]))
            signature = _b64decode(parts[2])
        except (ValueError, UnicodeDecodeError) as exc:
            raise Unauthenticated("malformed token: segments are not base64url JSON") from exc
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise Unauthenticated("malformed token: header and claims must be JSON objects")
        return header, claims, f"{parts[0]}.{parts[1]}".encode(), signature

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        if _text_claim(claims, "iss") not in self.issuers:
            raise Unauthenticated(f"token issuer {claims.get('iss')!r} is not accepted")
        self._check_times(claims, self._now())
        if _text_claim(claims, "aud") not in self.audiences:
            raise Unauthenticated(f"token audience {claims.get('aud')!r} is not this service; set the task's "
                                  f"oidcToken.audience to {sorted(self.audiences)[0]!r}")

    def _check_times(self, claims: Mapping[str, Any], now: float) -> None:
        iat, exp = _time_claim(claims, "iat"), _time_claim(claims, "exp")
        if iat is None or exp is None:
            raise Unauthenticated("token lacks finite numeric iat/exp claims")
        if not 0 < exp - iat <= MAX_LIFETIME_SECONDS:
            raise Unauthenticated(f"token lifetime {exp - iat:.0f} s is outside (0, {MAX_LIFETIME_SECONDS:.0f}] s")
        if now > exp + self.skew:
            raise Unauthenticated("token expired")
        if now < iat - self.skew:
            raise Unauthenticated("token used before its issue time (check clocks)")
        nbf = _time_claim(claims, "nbf")
        if "nbf" in claims and (nbf is None or now < nbf - self.skew):
            raise Unauthenticated("token is not valid yet (nbf in the future) or its nbf is malformed")

    def _authorize(self, claims: Mapping[str, Any]) -> Caller:
        email = claims.get("email")
        if not isinstance(email, str) or claims.get("email_verified") is not True:
            raise Forbidden("token has no verified service-account email")
        if self.allowed_emails and email not in self.allowed_emails:
            raise Forbidden(f"service account {email} may not call this service")
        # Read-only: a remembered Caller is shared by every request that carries its token.
        return Caller(email=email, subject=str(claims.get("sub", "")), audience=str(claims["aud"]),
                      claims=MappingProxyType(dict(claims)))
