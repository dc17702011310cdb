"""A test OIDC issuer: its own RSA key, its certificates on a real local HTTP server, and
tokens minted (or forged) on demand."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class RsaKey:
    """An RSA key with a self-signed certificate, as Google publishes at /oauth2/v1/certs."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ordertasks-test")])
        now = dt.datetime.now(dt.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.private.public_key()).serial_number(1)
                     .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
                     .sign(self.private, hashes.SHA256()))
        pem = self.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        self.signer = crypt.RSASigner.from_string(pem, key_id=kid)

    @property
    def cert_pem(self) -> str:
        """The certificate in PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def public_pem(self) -> bytes:
        """The bare public key in PEM (what an HS256 forgery uses as its 'secret')."""
        return self.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)


class TestIssuer:
    """Mints tokens like Google's for Cloud Tasks and serves the certs on loopback."""

    __test__ = False  # not a test class

    def __init__(self, audience: str, email: str) -> None:
        self.audience, self.email = audience, email
        self.key = RsaKey("test-key-1")
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.fetches = 0
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def certs_url(self) -> str:
        """URL of the PEM certificate map."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/oauth2/v1/certs"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                """Quiet."""

            def do_GET(self) -> None:  # noqa: N802
                issuer.fetches += 1
                body = json.dumps({issuer.key.kid: issuer.key.cert_pem}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "public, max-age=300")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """Claims of a valid Cloud Tasks token, with ``overrides`` applied (None removes)."""
        now = int(time.time())
        claims: dict[str, Any] = {"iss": "https://accounts.google.com", "aud": self.audience, "email": self.email,
                                  "email_verified": True, "sub": "1234567890", "azp": "1234567890",
                                  "iat": now, "exp": now + 3600}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, signer: crypt.RSASigner | None = None, **overrides: Any) -> str:
        """A signed RS256 token (by our key unless another signer is given)."""
        return jwt.encode(signer or self.key.signer, self.claims(**overrides)).decode()

    def unsigned_token(self, alg: str = "none", **overrides: Any) -> str:
        """An ``alg: none`` forgery."""
        header = _b64(json.dumps({"alg": alg, "typ": "JWT", "kid": self.key.kid}).encode())
        return f"{header}.{_b64(json.dumps(self.claims(**overrides)).encode())}."

    def hs256_token(self, **overrides: Any) -> str:
        """An HS256 forgery keyed with our public key (the classic algorithm-confusion attack)."""
        import hashlib
        import hmac

        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": self.key.kid}).encode())
        payload = _b64(json.dumps(self.claims(**overrides)).encode())
        mac = hmac.new(self.key.public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(mac)}"

    def stop(self) -> None:
        """Stop the certs server."""
        self.server.shutdown()
        self.server.server_close()
