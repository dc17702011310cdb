"""Items 3 and 4, and the OIDC checks that already held: every bad token is a 401/403, never a 500,
never an effect; certificates that cannot be fetched are a 503 with Retry-After."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from ordertasks.functions.main import build_handler
from ordertasks.handlers.config import Settings
from ordertasks.handlers.settings import OidcSettings, StoreSettings, TasksSettings
from ordertasks.handlers.contract import encode
from tests.functions.conftest import DISPATCHER, HandlerStack, serve_flask
from tests.security.tokens import with_header
from tests.support.issuer import RsaKey, TestIssuer
from tests.support.servers import free_port

KIND = "notify_warehouse"
HOUR = 3600


def warehouse_task(order_id: str) -> bytes:
    return encode(KIND, order_id)


def refused(stack: HandlerStack, token: str | None, status: int, order_id: str) -> None:
    """The delivery is refused with ``status``, a JSON error, and no effect or record."""
    resp = stack.deliver(warehouse_task(order_id), token=token)
    assert resp.status_code == status, resp.text
    assert "error" in resp.json() and "Traceback" not in resp.text
    assert stack.warehouse.state.notifications == {}
    assert stack.store.effects.get_effect(order_id, KIND) is None


ATTACKS: dict[str, tuple[str, int, Callable[[TestIssuer], str | None]]] = {
    # name: (docstring, status, token)
    "alg_none": ("alg none: an unsigned token", 401, lambda i: i.unsigned_token()),
    "hs256_public_key": ("HS256 keyed with the public key (algorithm confusion)", 401, lambda i: i.hs256_token()),
    "wrong_kid_key": ("a token signed by another key under our kid", 401,
                      lambda i: i.token(signer=RsaKey(i.key.kid).signer)),
    "expired": ("a token past its exp", 401, lambda i: i.token(iat=1_600_000_000, exp=1_600_003_600)),
    "wrong_audience": ("a token minted for another service", 401, lambda i: i.token(aud="https://other.example/")),
    "wrong_issuer": ("a token from another issuer", 401, lambda i: i.token(iss="https://evil.example")),
    "wrong_email": ("a valid token of another service account", 403,
                    lambda i: i.token(email="intruder@evil.iam.gserviceaccount.com")),
    "email_unverified": ("email_verified false", 403, lambda i: i.token(email_verified=False)),
    "email_verified_string": ("email_verified as the string 'true'", 403, lambda i: i.token(email_verified="true")),
    "missing": ("no Authorization header", 401, lambda i: None),
    "garbage": ("a token that is not a JWT", 401, lambda i: "not.a.jwt"),
    # item 3: malformed claims in validly signed tokens
    "aud_list": ("aud as a list containing our audience (was a 500: unhashable)", 401,
                 lambda i: i.token(aud=[i.audience])),
    "aud_object": ("aud as an object (was a 500)", 401, lambda i: i.token(aud={"a": i.audience})),
    "iss_list": ("iss as a list (was a 500)", 401, lambda i: i.token(iss=["https://accounts.google.com"])),
    "iss_object": ("iss as an object (was a 500)", 401, lambda i: i.token(iss={"x": 1})),
    "exp_string": ("exp as a string", 401, lambda i: i.token(exp=str(int(time.time()) + 60))),
    "exp_bool": ("exp as true", 401, lambda i: i.token(exp=True)),
    "kid_list": ("kid as a list (was a 500)", 401,
                 lambda i: with_header(i, {"alg": "RS256", "typ": "JWT", "kid": [i.key.kid]})),
    # item 4: lifetime and nbf
    "exp_30_years": ("exp 30 years ahead (a stolen token that never expires)", 401,
                     lambda i: i.token(exp=int(time.time()) + 30 * 365 * 86400)),
    "exp_infinity": ("exp Infinity", 401, lambda i: i.token(exp=float("inf"))),
    "exp_nan": ("exp NaN", 401, lambda i: i.token(exp=float("nan"))),
    "lifetime_over_an_hour": ("exp - iat just over an hour", 401,
                              lambda i: i.token(exp=int(time.time()) + HOUR + 2, iat=int(time.time()))),
    "exp_before_iat": ("exp before iat", 401,
                       lambda i: i.token(iat=int(time.time()), exp=int(time.time()) - 1)),
    "nbf_future": ("nbf ten minutes ahead (a token minted for later)", 401,
                   lambda i: i.token(nbf=int(time.time()) + 600)),
    "nbf_string": ("nbf as a string", 401, lambda i: i.token(nbf="0")),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_bad_tokens_are_refused_without_effect(stack: HandlerStack, name: str) -> None:
    """Attack: each forged or malformed token in ATTACKS (its description says which)."""
    _, status, token = ATTACKS[name]
    refused(stack, token(stack.issuer), status, f"ord_tok_{name}")


@pytest.mark.parametrize("claims", [{}, {"nbf": "now-30"}, {"exp": "iat+3600"}])
def test_tokens_within_the_rules_still_pass(stack: HandlerStack, claims: dict[str, str]) -> None:
    """Attack: none; an hour-long token, and nbf within the clock skew, are accepted."""
    now = int(time.time())
    values = {"nbf": now + 30, "exp": now + HOUR}
    token = stack.issuer.token(iat=now, **{name: values[name] for name in claims})
    resp = stack.deliver(stack.task(KIND, "ord_tok_ok"), token=token)
    assert resp.status_code == 200 and resp.json()["outcome"] == "done", resp.text


@pytest.fixture
def unreachable_certs(tmp_path: Path) -> Iterator[tuple[str, TestIssuer]]:
    """A handler whose certificates URL points at a port nothing listens on."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    issuer = TestIssuer(audience=url, email=DISPATCHER)
    settings = Settings(store=StoreSettings(data_dir=tmp_path), tasks=TasksSettings(handler_url=url),
                        oidc=OidcSettings(certs_url=f"http://127.0.0.1:{free_port()}/oauth2/v1/certs"))
    server, _ = serve_flask(build_handler(settings), port)
    yield url, issuer
    server.shutdown()  # type: ignore[attr-defined]
    issuer.stop()


def test_unreachable_certificates_answer_503_with_retry_after(unreachable_certs: tuple[str, TestIssuer]) -> None:
    """Attack: a certs outage made every delivery a 500 with a traceback (and no Retry-After)."""
    url, issuer = unreachable_certs
    for _ in range(3):
        resp = requests.post(url, data=warehouse_task("ord_certs_down"), timeout=30,
                             headers={"Authorization": f"Bearer {issuer.token()}"})
        assert resp.status_code == 503, resp.text
        assert int(resp.headers["Retry-After"]) >= 1
        assert "Traceback" not in resp.text and "certificates" in resp.json()["error"]
        assert "127.0.0.1" not in resp.text          # the detail is for the log, not the caller
