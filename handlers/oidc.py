"""Verify the OIDC bearer token Cloud Tasks (or Cloud Scheduler) sends.

Checks, in order: a ``Bearer`` token is present and well formed; its header says RS256
(``none``, HS256 and every other algorithm are refused before any key is touched); the
signature verifies against the issuer's certificates (fetched from ``certs_url``, cached
for their ``max-age`` and refetched when a new ``kid`` appears, so key rotation works);
``iss`` is Google's; ``iat``/``exp`` within a small skew; ``aud`` is ours. Any of those
failing is ``Unauthenticated`` (401). A valid token whose ``email`` is not an allowed,
verified service account is ``Forbidden`` (403).

Locally the Cloud Tasks emulator signs with its own key and serves its certificates at
``/oauth2/v1/certs``; the checks are identical and only ``certs_url`` differs.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from google.auth import crypt

from handlers.errors import DependencyUnavailable, Forbidden, Unauthenticated

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
MAX_AGE = re.compile(r"max-age=(\d+)")


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


class CertCache:
    """The issuer's public keys, cached for the ``max-age`` the server gives (min 60 s)."""

    def __init__(self, certs_url: str, fetch: Callable[[str], tuple[dict[str, Any], float]] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.certs_url = certs_url
        self._fetch = fetch or self._http_fetch
        self._monotonic = monotonic
        self._keys: dict[str, crypt.RSAVerifier] = {}
        self._expires = 0.0
        self._lock = threading.Lock()
        self._session = requests.Session()

    def _http_fetch(self, url: str) -> tuple[dict[str, Any], float]:
        try:
            resp = self._session.get(url, timeout=5)
            resp.raise_for_status()
            match = MAX_AGE.search(resp.headers.get("Cache-Control", ""))
            return resp.json(), float(match.group(1)) if match else 300.0
        except (requests.RequestException, ValueError) as exc:
            raise DependencyUnavailable(f"cannot fetch OIDC certificates from {url}: {exc}") from exc

    def _refresh(self) -> None:
        document, max_age = self._fetch(self.certs_url)
        self._keys = parse_certs(document)
        self._expires = self._monotonic() + max(60.0, max_age)

    def key(self, kid: str | None) -> list[crypt.RSAVerifier]:
        """Verifiers to try for ``kid``; refetches once when the kid is unknown or stale."""
        with self._lock:
            if self._monotonic() >= self._expires or (kid is not None and kid not in self._keys):
                self._refresh()
            if kid is None:
                return list(self._keys.values())
            return [self._keys[kid]] if kid in self._keys else []


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
                 skew_seconds: float = 60.0, cache_size: int = 4096) -> None:
        self.certs = certs
        self.audiences = {a for a in audiences if a} | {a.rstrip("/") for a in audiences if a}
        self.allowed_emails = frozenset(allowed_emails)
        self.issuers = frozenset(issuers)
        self._now = now
        self.skew = skew_seconds
        # Cloud Tasks reuses a token for many dispatches; remember signatures already checked.
        self._verified: OrderedDict[str, Mapping[str, Any]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def verify(self, authorization: str | None) -> Caller:
        """Return the verified caller or raise ``Unauthenticated`` / ``Forbidden``."""
        token = self._bearer(authorization)
        claims = self._cached(token) or self._verify_signature(token)
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

    def _cached(self, token: str) -> Mapping[str, Any] | None:
        with self._lock:
            claims = self._verified.get(token)
            if claims is not None:
                self._verified.move_to_end(token)
            return claims

    def _remember(self, token: str, claims: Mapping[str, Any]) -> None:
        with self._lock:
            self._verified[token] = claims
            while len(self._verified) > self._cache_size:
                self._verified.popitem(last=False)

    def _verify_signature(self, token: str) -> Mapping[str, Any]:
        header, claims, signed, signature = self._split(token)
        if header.get("alg") != "RS256":
            raise Unauthenticated(f"token algorithm {header.get('alg')!r} is not accepted; expected RS256")
        kid = header.get("kid")
        if not any(v.verify(signed, signature) for v in self.certs.key(kid if isinstance(kid, str) else None)):
            raise Unauthenticated("token signature does not verify against the issuer's certificates")
        self._remember(token, claims)
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
        now = self._now()
        if claims.get("iss") not in self.issuers:
            raise Unauthenticated(f"token issuer {claims.get('iss')!r} is not accepted")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, (int, float)) or not isinstance(iat, (int, float)):
            raise Unauthenticated("token lacks numeric iat/exp claims")
        if now > exp + self.skew:
            raise Unauthenticated("token expired")
        if now < iat - self.skew:
            raise Unauthenticated("token used before its issue time (check clocks)")
        if claims.get("aud") not in self.audiences:
            raise Unauthenticated(f"token audience {claims.get('aud')!r} is not this service; set the task's "
                                  f"oidcToken.audience to {sorted(self.audiences)[0]!r}")

    def _authorize(self, claims: Mapping[str, Any]) -> Caller:
        email = claims.get("email")
        if not isinstance(email, str) or claims.get("email_verified") is not True:
            raise Forbidden("token has no verified service-account email")
        if self.allowed_emails and email not in self.allowed_emails:
            raise Forbidden(f"service account {email} may not call this service")
        return Caller(email=email, subject=str(claims.get("sub", "")), audience=str(claims["aud"]), claims=claims)
