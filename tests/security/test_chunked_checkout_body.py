"""Issue 28 F8: a chunked checkout body (no ``Content-Length``) was cut at 64 KiB and its first
part accepted (201), so a proxy and the checkout could read different orders. Now one byte past
the limit is a 413 with the checkout's JSON error, on the deployed server and the local one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from ordertasks.producer.checkout import MAX_BODY_BYTES
from tests.security.slow_clients import deployed_checkout, deployed_checkout_argv, local_checkout_argv
from tests.support.samples import CHECKOUT_BODY

SERVERS = {"deployed": deployed_checkout_argv, "local": local_checkout_argv}


@pytest.fixture(scope="module", params=sorted(SERVERS))
def checkout(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The checkout's port: as deployed (gunicorn, the plan's worker) and as ``ordertasks checkout``."""
    with deployed_checkout(tmp_path_factory.mktemp(request.param), SERVERS[request.param]) as port:
        yield port


def padded_order(size: int) -> bytes:
    """A valid order whose JSON is ``size`` bytes (trailing whitespace pads it)."""
    order = json.dumps(CHECKOUT_BODY).encode()
    return order + b" " * (size - len(order))


def post_chunked(port: int, body: bytes) -> requests.Response:
    """POST ``body`` to the checkout with ``Transfer-Encoding: chunked`` (4 KiB chunks, no length)."""
    chunks = (body[i:i + 4096] for i in range(0, len(body), 4096))
    return requests.post(f"http://127.0.0.1:{port}/api/checkout", data=chunks, timeout=30,
                         headers={"Content-Type": "application/json"})


def test_a_chunked_body_over_the_limit_is_413(checkout: int) -> None:
    """Attack: a 65 KiB chunked order; its first 64 KiB used to be accepted as the order."""
    resp = post_chunked(checkout, padded_order(65 * 1024))
    error: dict[str, Any] = resp.json()["error"]
    assert resp.status_code == 413 and error["code"] == "request_entity_too_large", resp.text


def test_a_chunked_body_one_byte_over_the_limit_is_413(checkout: int) -> None:
    """Attack: the limit is exact, chunked as with a Content-Length."""
    assert post_chunked(checkout, padded_order(MAX_BODY_BYTES + 1)).status_code == 413


def test_a_chunked_order_under_the_limit_is_accepted(checkout: int) -> None:
    """Attack: none; chunked orders a client may send must still work (202: no Cloud Tasks here)."""
    resp = post_chunked(checkout, padded_order(MAX_BODY_BYTES))
    assert resp.status_code in (201, 202) and resp.json()["order_id"], resp.text
