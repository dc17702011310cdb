"""The conformance matrix: one scenario through every official client, unchanged.

Python ``google-cloud-tasks`` (gRPC, its default, and REST), Node ``@google-cloud/tasks``
(gRPC with an insecure channel, and the REST fallback) and ``gcloud tasks`` each: create a
queue, create a named task scheduled an hour ahead, list it, run it, see it delivered with
the Cloud Tasks headers and an OIDC token google-auth verifies, get ALREADY_EXISTS for the
name, delete a task and get NOT_FOUND for it.

Node needs ``npm install --prefix tests/emulator/node`` (``.ci/run`` does it); without it the
Node rows skip locally and fail in CI, like every test that needs a binary.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import google.auth.transport.requests
import pytest
from google.oauth2 import id_token

from tests.emulator.clients import NODE_DIR, ClientError, Driver, GcloudDriver, NodeDriver, PythonDriver
from tests.emulator.conftest import Emulator
from tests.emulator.receiver import Receiver
from tests.support.servers import REQUIRE_EMULATORS, need_binary, wait_until

ACCOUNT = "dispatcher@test-project.iam.gserviceaccount.com"
CLIENTS = ["python-grpc", "python-rest", "node-grpc", "node-rest", "gcloud"]


def node_binary() -> str:
    """node, with the client installed next to the driver (skip locally, fail in CI)."""
    node = need_binary("node", "the conformance matrix runs the official Node client")
    if not (NODE_DIR / "node_modules" / "@google-cloud" / "tasks").is_dir():
        message = "the Node client is not installed: run npm install --prefix tests/emulator/node"
        if REQUIRE_EMULATORS:
            pytest.fail(message + " (REQUIRE_EMULATORS=1: this must run in CI)")
        pytest.skip(message)
    return node


@pytest.fixture(params=CLIENTS)
def driver(request: pytest.FixtureRequest, emulator: Emulator) -> Iterator[Driver]:
    """One client of the matrix, aimed at the shared emulator."""
    kind, _, transport = request.param.partition("-")
    if kind == "python":
        yield PythonDriver(emulator, transport)
    elif kind == "node":
        node = NodeDriver(node_binary(), emulator, transport)
        try:
            yield node
        finally:
            node.close()
    else:
        yield GcloudDriver(request.getfixturevalue("gcloud"))


def test_the_same_scenario_through_every_client(driver: Driver, emulator: Emulator, receiver: Receiver) -> None:
    queue = f"matrix-{uuid.uuid4().hex[:10]}"
    eta = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).replace(microsecond=0)
    audience = receiver.url("/")

    driver.create_queue(queue)
    driver.create_task(queue, "order-1", receiver.url("/deliver"), eta, ACCOUNT, audience, {"X-Order": "1"})
    assert "order-1" in driver.list_tasks(queue)
    driver.run_task(queue, "order-1")

    request = wait_until(lambda: receiver.received("/deliver"), timeout=10, what="the forced delivery")[0]
    assert request.method == "POST" and request.header("X-Order") == "1"
    assert request.header("User-Agent") == "Google-Cloud-Tasks"
    assert request.header("X-CloudTasks-QueueName") == queue and request.header("X-CloudTasks-TaskName") == "order-1"
    assert request.header("X-CloudTasks-TaskRetryCount") == "0"
    assert request.header("X-CloudTasks-TaskExecutionCount") == "0"
    assert float(request.header("X-CloudTasks-TaskETA") or 0) == eta.timestamp()
    token = (request.header("Authorization") or "").removeprefix("Bearer ")
    claims = id_token.verify_token(token, google.auth.transport.requests.Request(), audience=audience,
                                   certs_url=emulator.endpoint + "/oauth2/v1/certs")
    assert claims["email"] == ACCOUNT and claims["email_verified"] is True

    with pytest.raises(ClientError) as exists:
        driver.create_task(queue, "order-1", receiver.url("/deliver"), eta, ACCOUNT, audience, {})
    assert exists.value.status == "ALREADY_EXISTS"
    driver.create_task(queue, "order-2", receiver.url("/never"), eta, ACCOUNT, audience, {})
    driver.delete_task(queue, "order-2")
    with pytest.raises(ClientError) as missing:
        driver.get_task(queue, "order-2")
    assert missing.value.status == "NOT_FOUND"
    assert receiver.received("/never") == []
