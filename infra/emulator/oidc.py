"""OIDC tokens the emulator mints for tasks with ``oidcToken``, and the keys to verify them.

The emulator owns one RSA key (generated on first start, kept in the database so tokens
stay verifiable across restarts).  Its public half is served two ways, as Google does:
a JWK set (``/oauth2/v3/certs``) and ``{kid: PEM certificate}`` (``/oauth2/v1/certs``,
what ``google.oauth2.id_token.verify_token(..., certs_url=...)`` reads).  Tokens are RS256
JWTs with ``iss`` = ``https://accounts.google.com`` by default, so a handler's checks are
the same as in the cloud and only the certs URL differs.  The discovery document
(``/.well-known/openid-configuration``) names the issuer and the JWK set, for verifiers that
start from the issuer (run the emulator with ``--issuer`` set to its own URL for those).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

TOKEN_LIFETIME = 3600
# Minting costs about a millisecond; reuse a token while it has most of its life left.
TOKEN_REUSE = 300
META_KEY = "oidc_signing_key"
DEFAULT_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def _b64url_uint(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def new_key_material(now: float) -> str:
    """A fresh RSA-2048 key and self-signed certificate, as the JSON kept in the database."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ordertasks-emulator")])
    start = dt.datetime.fromtimestamp(now, dt.timezone.utc) - dt.timedelta(days=1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=3650)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode("ascii")
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    kid = hashlib.sha1(cert_pem.encode()).hexdigest()
    return json.dumps({"kid": kid, "key": key_pem, "cert": cert_pem})


class TokenMinter:
    """Signs OIDC ID tokens with the emulator's key and publishes the verification keys."""

    def __init__(self, material: str, issuer: str, clock: Callable[[], float]) -> None:
        raw = json.loads(material)
        self.kid: str = raw["kid"]
        self.cert_pem: str = raw["cert"]
        self.issuer = issuer
        self._clock = clock
        self._signer = crypt.RSASigner.from_string(raw["key"], key_id=self.kid)
        self._public = x509.load_pem_x509_certificate(self.cert_pem.encode()).public_key()
        self._cache: dict[tuple[str, str], tuple[float, str]] = {}

    def token(self, email: str, audience: str) -> str:
        """A valid ID token for ``email`` aimed at ``audience`` (cached for a few minutes)."""
        now = self._clock()
        cached = self._cache.get((email, audience))
        if cached and now - cached[0] < TOKEN_REUSE:
            return cached[1]
        issued = int(now)
        claims = {"aud": audience, "iss": self.issuer, "azp": email, "sub": _subject(email),
                  "email": email, "email_verified": True, "iat": issued, "exp": issued + TOKEN_LIFETIME}
        token = jwt.encode(self._signer, claims).decode("ascii")
        self._cache[(email, audience)] = (issued, token)
        return token

    def access_token(self, email: str, scope: str) -> str:
        """A stand-in OAuth access token for ``email`` (an emulator-signed JWT carrying ``scope``;
        Google's APIs would not accept it, a local target can read it)."""
        issued = int(self._clock())
        claims = {"iss": self.issuer, "sub": _subject(email), "email": email, "scope": scope or DEFAULT_SCOPE,
                  "iat": issued, "exp": issued + TOKEN_LIFETIME}
        return jwt.encode(self._signer, claims).decode("ascii")

    def jwks(self) -> dict[str, Any]:
        """The public key as a JWK set (``/oauth2/v3/certs``)."""
        numbers = self._public.public_numbers()  # type: ignore[union-attr]
        return {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
                          "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}]}

    def discovery(self, jwks_uri: str) -> dict[str, Any]:
        """The OpenID Connect discovery document (``/.well-known/openid-configuration``): the
        tokens' issuer, where their keys are, and what they hold.  There is no authorization or
        token endpoint: the emulator mints tokens only for the tasks it dispatches."""
        return {"issuer": self.issuer, "jwks_uri": jwks_uri, "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"],
                "claims_supported": ["aud", "azp", "email", "email_verified", "exp", "iat", "iss", "sub"]}

    def pem_certs(self) -> dict[str, str]:
        """The public key as ``{kid: PEM certificate}`` (``/oauth2/v1/certs``)."""
        return {self.kid: self.cert_pem}


def _subject(email: str) -> str:
    """A stable numeric ``sub`` per account, like Google's numeric unique ids."""
    return str(int(hashlib.sha256(email.encode()).hexdigest()[:15], 16))
