"""Case 5: forged and bad tokens get 401/403 and cause no effect.

In-process (test issuer, so every claim can be forged) and through the full local stack,
where the handler checks tokens against the Cloud Tasks emulator's certificates: forgeries
POSTed straight at it, and real tasks whose emulator-minted token names another service
account or another audience.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ordertasks.handlers.backends.sqlite import SqliteStore
from tests.reliability.handler_rig import Rig, task_body
from tests.reliability.stack import LocalStack
from tests.support.issuer import RsaKey
from tests.support.servers import wait_until

KIND = "send_confirmation_email"
NOW = int(time.time())


def _forgeries(rig: Rig) -> dict[str, tuple[Callable[[], str | None], int]]:
    issuer = rig.issuer
    return {
        "missing": (lambda: None, 401),
        "malformed": (lambda: "not.a.jwt-at-all", 401),
        "expired": (lambda: issuer.token(iat=NOW - 7200, exp=NOW - 3600), 401),
        "not_yet_valid": (lambda: issuer.token(iat=NOW + 3600, exp=NOW + 7200), 401),
        "wrong_audience": (lambda: issuer.token(aud="https://elsewhere.example/"), 401),
        "wrong_issuer": (lambda: issuer.token(iss="https://evil.example"), 401),
        "another_key": (lambda: issuer.token(signer=RsaKey(issuer.key.kid).signer), 401),
        "alg_none": (lambda: issuer.unsigned_token(), 401),
        "hs256_public_key": (lambda: issuer.hs256_token(), 401),
        "other_service_account": (lambda: issuer.token(email="someone@evil.iam.gserviceaccount.com"), 403),
        "unverified_email": (lambda: issuer.token(email_verified=False), 403),
    }


CASES = ["missing", "malformed", "expired", "not_yet_valid", "wrong_audience", "wrong_issuer", "another_key",
         "alg_none", "hs256_public_key", "other_service_account", "unverified_email"]


@pytest.mark.parametrize("case", CASES)
def test_bad_token_is_refused_with_no_effect(rig_for: Any, tmp_path: Path, case: str) -> None:
    rig = rig_for(SqliteStore(tmp_path / "store.db"))
    make_token, status = _forgeries(rig)[case]
    resp = rig.deliver(task_body(KIND, "ord_tok_1"), KIND, token=make_token())
    assert resp.status_code == status, resp.text
    assert rig.effects("ord_tok_1") == dict.fromkeys(rig.effects("ord_tok_1"), 0)
    assert rig.store.effects.get_effect("ord_tok_1", KIND) is None and rig.store.failed.list_failed() == []


# --- through the full local stack ---------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _emulator_public_pem(stack: LocalStack) -> tuple[str, bytes]:
    certs = requests.get(f"{stack.url('emulator')}/oauth2/v1/certs", timeout=10).json()
    kid, pem = next(iter(certs.items()))
    key = x509.load_pem_x509_certificate(pem.encode()).public_key()
    return kid, key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _claims(stack: LocalStack) -> dict[str, Any]:
    return {"iss": "https://accounts.google.com", "aud": f"{stack.url('handler')}/", "email_verified": True,
            "email": stack.catalog_email(), "iat": NOW, "exp": NOW + 3600, "sub": "1"}


def _hs256(stack: LocalStack) -> str:
    kid, public_pem = _emulator_public_pem(stack)
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = _b64(json.dumps(_claims(stack)).encode())
    return f"{head}.{body}.{_b64(hmac.new(public_pem, f'{head}.{body}'.encode(), hashlib.sha256).digest())}"


def _alg_none(stack: LocalStack) -> str:
    kid, _ = _emulator_public_pem(stack)
    return f"{_b64(json.dumps({'alg': 'none', 'kid': kid}).encode())}.{_b64(json.dumps(_claims(stack)).encode())}."


def _another_key(stack: LocalStack) -> str:
    from google.auth import jwt

    kid, _ = _emulator_public_pem(stack)
    return jwt.encode(RsaKey(kid).signer, _claims(stack)).decode()


def _create_task(stack: LocalStack, order_id: str, email: str, audience: str) -> str:
    cat = stack.catalog()
    queue = f"projects/{cat.project}/locations/{cat.region}/queues/{cat.kinds[KIND].queue}"
    body = {"task": {"httpRequest": {"url": f"{stack.url('handler')}/", "httpMethod": "POST",
                                     "body": base64.b64encode(task_body(KIND, order_id)).decode(),
                                     "oidcToken": {"serviceAccountEmail": email, "audience": audience}}}}
    resp = requests.post(f"{stack.url('emulator')}/v2/{queue}/tasks", json=body, timeout=10)
    resp.raise_for_status()
    return str(resp.json()["name"]).rsplit("/", 1)[1]


def test_forged_and_misdirected_tokens_through_the_local_stack(local_stack: LocalStack) -> None:
    stack = local_stack
    forged = {"missing": None, "malformed": "a.b", "alg_none": _alg_none(stack), "hs256": _hs256(stack),
              "another_key": _another_key(stack)}
    for case, token in forged.items():
        headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
        resp = requests.post(f"{stack.url('handler')}/", data=task_body(KIND, "ord_forged_1"), headers=headers,
                             timeout=10)
        assert resp.status_code == 401, (case, resp.text)
    # Real tasks: the emulator mints a valid token, but for another account or audience.
    wrong_sa = _create_task(stack, "ord_forged_2", "intruder@evil.iam.gserviceaccount.com", f"{stack.url('handler')}/")
    wrong_aud = _create_task(stack, "ord_forged_3", stack.catalog_email(), "https://elsewhere.example/")
    log = stack.data_dir / "logs" / "handler.log"
    for name in (wrong_sa, wrong_aud):
        wait_until(lambda n=name: log.read_text().count(f'"task_name": "{n}"') >= 2, timeout=30,
                   what=f"{name} refused and retried")
    text = log.read_text()
    assert '"status": 403' in text and '"status": 401' in text
    with stack.store() as store:
        for order_id in ("ord_forged_1", "ord_forged_2", "ord_forged_3"):
            assert store.effects.get_effect(order_id, KIND) is None
    assert list((stack.data_dir / "mail").glob("*.eml")) == []
