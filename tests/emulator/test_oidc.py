"""OIDC tokens minted at dispatch, verified with google-auth against the emulator's certs."""

from __future__ import annotations

import time

import google.auth.transport.requests
import pytest
import requests
from google.oauth2 import id_token

from tests.emulator.receiver import Receiver
from tests.support.servers import wait_until

ACCOUNT = "dispatcher@test-project.iam.gserviceaccount.com"


def bearer(request) -> str:  # type: ignore[no-untyped-def]
    """The token of an ``Authorization: Bearer`` header."""
    scheme, _, token = request.headers["Authorization"].partition(" ")
    assert scheme == "Bearer"
    return token


@pytest.mark.parametrize("certs_path", ["/oauth2/v1/certs", "/oauth2/v3/certs"])
def test_token_verifies_with_google_auth(client, make_queue, receiver: Receiver, emulator, certs_path) -> None:
    queue = make_queue()
    audience = receiver.url("/")
    client.create_task(parent=queue, task={"http_request": {
        "url": receiver.url("/secure"), "oidc_token": {"service_account_email": ACCOUNT, "audience": audience}}})
    request = wait_until(lambda: receiver.received("/secure"), timeout=5, what="delivery")[0]

    claims = id_token.verify_token(bearer(request), google.auth.transport.requests.Request(), audience=audience,
                                   certs_url=emulator.endpoint + certs_path)

    assert claims["aud"] == audience
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["email"] == ACCOUNT and claims["email_verified"] is True
    assert claims["azp"] == ACCOUNT and claims["sub"].isdigit()
    assert claims["iat"] <= time.time() < claims["exp"] and claims["exp"] - claims["iat"] == 3600


def test_audience_defaults_to_the_full_url(client, make_queue, receiver: Receiver, emulator) -> None:
    queue = make_queue()
    url = receiver.url("/secure?order=1")
    client.create_task(parent=queue, task={"http_request": {"url": url, "oidc_token": {"service_account_email": ACCOUNT}}})
    request = wait_until(lambda: receiver.received("/secure?order=1"), timeout=5, what="delivery")[0]

    claims = id_token.verify_token(bearer(request), google.auth.transport.requests.Request(), audience=url,
                                   certs_url=emulator.endpoint + "/oauth2/v1/certs")

    assert claims["aud"] == url


def test_wrong_audience_is_rejected(client, make_queue, receiver: Receiver, emulator) -> None:
    queue = make_queue()
    client.create_task(parent=queue, task={"http_request": {
        "url": receiver.url("/aud"), "oidc_token": {"service_account_email": ACCOUNT, "audience": "https://a.example"}}})
    request = wait_until(lambda: receiver.received("/aud"), timeout=5, what="delivery")[0]

    with pytest.raises(ValueError, match="audience"):
        id_token.verify_token(bearer(request), google.auth.transport.requests.Request(),
                              audience="https://b.example", certs_url=emulator.endpoint + "/oauth2/v1/certs")


def test_task_without_oidc_token_has_no_authorization(client, make_queue, receiver: Receiver) -> None:
    queue = make_queue()
    client.create_task(parent=queue, task={"http_request": {"url": receiver.url("/plain")}})

    request = wait_until(lambda: receiver.received("/plain"), timeout=5, what="delivery")[0]

    assert request.header("Authorization") is None


def test_key_sets_are_published(emulator) -> None:
    jwks = requests.get(emulator.endpoint + "/oauth2/v3/certs", timeout=5).json()
    pems = requests.get(emulator.endpoint + "/oauth2/v1/certs", timeout=5).json()

    assert [k["kid"] for k in jwks["keys"]] == list(pems)
    assert jwks["keys"][0]["alg"] == "RS256" and jwks["keys"][0]["kty"] == "RSA"
    assert all(p.startswith("-----BEGIN CERTIFICATE-----") for p in pems.values())
