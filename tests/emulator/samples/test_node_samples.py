"""Google's Node Cloud Tasks samples (``node/``, from nodejs-docs-samples), unchanged, on the
emulator over gRPC and the REST fallback: each runs as ``node <sample>.js <its documented
arguments>``, the way its own test (``cloud-tasks/snippets/test/test.samples.js``) runs it; its
output, the emulator's state and the deliveries are checked.

The one thing supplied from outside is the endpoint: ``node --require emulator-client.cjs`` (see
that file). The client is tests/emulator/node's (``npm install --prefix tests/emulator/node``);
without it or without node the tests skip locally and fail in CI.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import uuid

import google.auth.transport.requests
import pytest
from google.api_core import exceptions
from google.cloud import tasks_v2
from google.oauth2 import id_token

from tests.emulator.clients import NODE_DIR
from tests.emulator.conftest import LOCATION, PARENT, PROJECT, Emulator
from tests.emulator.receiver import Receiver
from tests.emulator.samples.conftest import HERE
from tests.emulator.test_matrix import node_binary
from tests.support.servers import wait_until

pytestmark = pytest.mark.timeout(120)
SAMPLES = HERE / "node"
ACCOUNT = "sample-invoker@test-project.iam.gserviceaccount.com"
CREATED_TASK = re.compile(rf"^Created task ({re.escape(PARENT)}/queues/[\w-]+/tasks/\d+)$", re.M)


def run_sample(env: dict[str, str], script: str, *args: str) -> str:
    """``node <script> <args>`` with the emulator's client preloaded; its stdout."""
    argv = [node_binary(), "--require", str(HERE / "emulator-client.cjs"), script, *args]
    full_env = {**os.environ, **env, "NODE_PATH": str(NODE_DIR / "node_modules"), "METADATA_SERVER_DETECTION": "none"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=full_env, cwd=SAMPLES)
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stderr[-2000:]}"
    return done.stdout


def created_task(stdout: str) -> str:
    """The task name a create-task sample printed."""
    match = CREATED_TASK.search(stdout)
    assert match, stdout[-2000:]
    return match.group(1)


def full_task(checker, name: str) -> tasks_v2.Task:  # type: ignore[no-untyped-def]
    """The stored task, body included."""
    return checker.get_task(request={"name": name, "response_view": tasks_v2.Task.View.FULL})


def test_create_list_and_delete_queue(emulator_env: dict[str, str], checker) -> None:  # type: ignore[no-untyped-def]
    queue_id = f"sample-{uuid.uuid4().hex[:12]}"
    name = f"{PARENT}/queues/{queue_id}"

    created = run_sample(emulator_env, "createQueue.js", PROJECT, queue_id)
    assert created == f"Created queue {name}\n"
    assert checker.get_queue(name=name).state == tasks_v2.Queue.State.RUNNING
    listed = run_sample(emulator_env, "listQueues.js", PROJECT, LOCATION)
    assert listed.startswith("Queues:\n") and f"  {name}\n" in listed

    deleted = run_sample(emulator_env, "deleteQueue.js", PROJECT, queue_id)
    assert deleted == f"Deleted queue '{queue_id}'.\n"
    with pytest.raises(exceptions.NotFound):
        checker.get_queue(name=name)
    assert f"  {name}\n" not in run_sample(emulator_env, "listQueues.js", PROJECT, LOCATION)


def test_create_http_task_is_delivered(emulator_env: dict[str, str], new_queue, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    url = receiver.url("/taskhandler")

    stdout = run_sample(emulator_env, "createHttpTask.js", PROJECT, new_queue(), LOCATION, url, "Hello, emulator!")

    assert stdout.startswith("Sending task:\n")
    created_task(stdout)
    delivery = wait_until(lambda: receiver.received("/taskhandler"), timeout=10, what="delivery")[0]
    assert delivery.method == "POST" and delivery.body == b"Hello, emulator!"
    assert delivery.header("Content-Type") == "text/plain"


def test_create_http_task_in_seconds_is_scheduled(emulator_env: dict[str, str], checker, new_queue,  # type: ignore[no-untyped-def]
                                                  receiver: Receiver) -> None:
    expected_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=3600)

    stdout = run_sample(emulator_env, "createHttpTask.js", PROJECT, new_queue(), LOCATION,
                        receiver.url("/later"), "Later", "3600")

    task = full_task(checker, created_task(stdout))
    assert task.http_request.url == receiver.url("/later") and task.http_request.body == b"Later"
    assert abs((task.schedule_time - expected_at).total_seconds()) < 10
    assert receiver.received() == []


def test_create_http_task_with_token_delivers_an_oidc_token(emulator_env: dict[str, str], samples_emulator: Emulator,  # type: ignore[no-untyped-def]
                                                            new_queue, receiver: Receiver) -> None:
    url = receiver.url("/secure")

    stdout = run_sample(emulator_env, "createHttpTaskWithToken.js", PROJECT, new_queue(), LOCATION, url, ACCOUNT)

    created_task(stdout)
    delivery = wait_until(lambda: receiver.received("/secure"), timeout=10, what="delivery")[0]
    assert delivery.body == b"Hello, World!"
    scheme, _, token = (delivery.header("Authorization") or "").partition(" ")
    claims = id_token.verify_token(token, google.auth.transport.requests.Request(), audience=url,
                                   certs_url=samples_emulator.endpoint + "/oauth2/v3/certs")
    assert scheme == "Bearer" and claims["email"] == ACCOUNT and claims["aud"] == url


@pytest.mark.parametrize(("script", "args", "body"), [
    ("createTask.js", ("{queue}", LOCATION), b"Hello, World!"),
    ("quickstart.js", (LOCATION, "{queue}"), b""),
])
def test_app_engine_task_is_delivered_to_the_app_engine_host(emulator_env: dict[str, str], new_queue,  # type: ignore[no-untyped-def]
                                                            app_engine: Receiver, script: str, args: tuple[str, ...],
                                                            body: bytes) -> None:
    queue_id = new_queue()

    stdout = run_sample(emulator_env, script, PROJECT, *(a.format(queue=queue_id) for a in args))

    name = created_task(stdout)
    ours = lambda: [r for r in app_engine.received("/log_payload") if r.header("X-AppEngine-QueueName") == queue_id]  # noqa: E731
    delivery = wait_until(ours, timeout=10, what="App Engine delivery")[0]
    assert delivery.method == "POST" and delivery.body == body
    assert delivery.header("X-AppEngine-TaskName") == name.rsplit("/", 1)[1]

