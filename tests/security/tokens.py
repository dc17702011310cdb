"""Forged and odd tokens for the security tests, signed by the test issuer's real key."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.support.issuer import TestIssuer


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def with_header(issuer: TestIssuer, header: dict[str, Any], **claims: Any) -> str:
    """A token signed by the issuer's key with an arbitrary header (e.g. an unknown ``kid``)."""
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(issuer.claims(**claims)).encode())
    signature = issuer.key.signer.sign(f"{head}.{body}".encode())
    return f"{head}.{body}.{_b64(signature)}"


def unknown_kid(issuer: TestIssuer, n: int) -> str:
    """A validly shaped RS256 token naming a key id the issuer never published."""
    return with_header(issuer, {"alg": "RS256", "typ": "JWT", "kid": f"attacker-{n:06d}"})
