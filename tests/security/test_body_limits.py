"""Item 5: the handler authenticates from the headers before reading a body, and never reads past its limit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from ordertasks.functions.main import MAX_BODY
from tests.security.handler_process import handler_process, post_head, status_of
from tests.support.issuer import TestIssuer

HUGE = 200 * 1024 * 1024


@pytest.fixture(scope="module")
def handler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, TestIssuer]]:
    """The real handler (functions-framework, gunicorn) on a socket, OIDC on."""
    with handler_process(tmp_path_factory.mktemp("handler")) as (port, issuer, _):
        yield port, issuer


def test_a_huge_body_without_a_token_is_refused_before_it_is_read(handler: tuple[int, TestIssuer]) -> None:
    """Attack: 200 MB POSTs without a token were read into memory before the 401 (RSS 284 → 680 MB)."""
    port, _ = handler
    answer = post_head(port, {"Content-Length": str(HUGE), "Content-Type": "application/json"}, b"{" * 1024)
    assert status_of(answer) == 401


def test_a_huge_body_with_a_bad_token_is_refused_before_it_is_read(handler: tuple[int, TestIssuer]) -> None:
    """Attack: the same with a forged token (alg none)."""
    port, issuer = handler
    answer = post_head(port, {"Content-Length": str(HUGE), "Authorization": f"Bearer {issuer.unsigned_token()}"})
    assert status_of(answer) == 401


def test_an_authenticated_body_over_the_limit_is_413_unread(handler: tuple[int, TestIssuer]) -> None:
    """Attack: a caller with a valid token announcing 200 MB; refused from Content-Length alone."""
    port, issuer = handler
    answer = post_head(port, {"Content-Length": str(HUGE), "Authorization": f"Bearer {issuer.token()}"})
    assert status_of(answer) == 413


def test_a_chunked_authenticated_body_is_read_only_up_to_the_limit(handler: tuple[int, TestIssuer]) -> None:
    """Attack: a chunked body (no Content-Length) streaming without end; cut off at the limit with 413."""
    port, issuer = handler
    chunk = b"x" * 65536
    framed = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * (MAX_BODY // len(chunk) + 2)
    answer = post_head(port, {"Transfer-Encoding": "chunked", "Authorization": f"Bearer {issuer.token()}"}, framed)
    assert status_of(answer) == 413


def test_a_body_at_the_limit_is_still_delivered(handler: tuple[int, TestIssuer]) -> None:
    """Attack: none; the limit must not refuse a task Cloud Tasks could have sent."""
    port, issuer = handler
    body = b'{"kind": "nope", "v": 1, "order_id": "ord_big", "pad": "' + b"x" * (MAX_BODY - 60) + b'"}'
    assert len(body) <= MAX_BODY
    resp = requests.post(f"http://127.0.0.1:{port}/", data=body, timeout=30,
                         headers={"Authorization": f"Bearer {issuer.token()}", "Content-Type": "application/json"})
    assert resp.status_code == 200 and resp.json()["outcome"] == "dead", resp.text


def test_a_body_one_byte_over_the_limit_is_413(handler: tuple[int, TestIssuer]) -> None:
    """Attack: the limit is exact, not approximate."""
    port, issuer = handler
    resp = requests.post(f"http://127.0.0.1:{port}/", data=b"x" * (MAX_BODY + 1), timeout=30,
                         headers={"Authorization": f"Bearer {issuer.token()}"})
    assert resp.status_code == 413 and "1 MiB" in resp.json()["error"]
