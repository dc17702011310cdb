"""Google's Python Cloud Tasks samples (``python/``, from python-docs-samples), unchanged, on the
emulator over gRPC and REST: their functions are called as their own tests call them, then the
emulator's state and the deliveries are checked; and their own tests run as published.

The one thing supplied from outside is the endpoint: ``tasks_v2.CloudTasksClient`` is the
emulator-bound subclass of :mod:`tests.emulator.samples.emulator_client` while a sample runs.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import uuid
from functools import cache
from types import ModuleType

import google.auth.transport.requests
import pytest
from google.api_core import exceptions
from google.cloud import tasks_v2
from google.oauth2 import id_token

from tests.emulator.conftest import LOCATION, PARENT, PROJECT, REPO_ROOT, Emulator
from tests.emulator.receiver import Receiver
from tests.emulator.samples.conftest import HERE
from tests.emulator.samples.emulator_client import emulator_client_class
from tests.support.servers import wait_until

pytestmark = pytest.mark.timeout(120)
SAMPLES = HERE / "python"
ACCOUNT = "sample-invoker@test-project.iam.gserviceaccount.com"


@cache
def sample(name: str) -> ModuleType:
    """``python/<name>.py`` as a module of its own (its bare name would shadow others)."""
    spec = importlib.util.spec_from_file_location(f"google_cloud_tasks_sample_{name}", SAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def on_emulator(monkeypatch: pytest.MonkeyPatch, samples_emulator: Emulator, transport: str) -> None:
    """While the test runs, the samples' ``tasks_v2.CloudTasksClient()`` reaches the emulator."""
    monkeypatch.setattr(tasks_v2, "CloudTasksClient",
                        emulator_client_class(f"127.0.0.1:{samples_emulator.port}", transport))


def queue_name(queue_id: str) -> str:
    """The full name of queue ``queue_id`` in the test location."""
    return f"{PARENT}/queues/{queue_id}"


@pytest.mark.usefixtures("on_emulator")
def test_create_list_and_delete_queue(checker) -> None:  # type: ignore[no-untyped-def]
    queue_id = f"sample-{uuid.uuid4().hex[:12]}"

    created = sample("create_queue").create_queue(PROJECT, LOCATION, queue_id)
    listed = sample("list_queues").list_queues(PROJECT, LOCATION)
    sample("delete_queue").delete_queue(PROJECT, LOCATION, queue_id)

    assert created.name == queue_name(queue_id) and created.state == tasks_v2.Queue.State.RUNNING
    assert queue_name(queue_id) in listed
    with pytest.raises(exceptions.NotFound):
        checker.get_queue(name=queue_name(queue_id))
    assert queue_name(queue_id) not in sample("list_queues").list_queues(PROJECT, LOCATION)
    with pytest.raises(exceptions.NotFound):
        sample("delete_queue").delete_queue(PROJECT, LOCATION, queue_id)


@pytest.mark.usefixtures("on_emulator")
def test_create_http_task_stores_what_it_was_given(checker, new_queue, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    queue_id, task_id = new_queue(), uuid.uuid4().hex
    expected_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=180)

    task = sample("create_http_task").create_http_task(
        PROJECT, LOCATION, queue_id, receiver.url("/task_handler"), json_payload={"greeting": "hola"},
        scheduled_seconds_from_now=180, task_id=task_id, deadline_in_seconds=900)

    assert task.name == f"{queue_name(queue_id)}/tasks/{task_id}"
    stored = checker.get_task(request={"name": task.name, "response_view": tasks_v2.Task.View.FULL})
    request = stored.http_request
    assert request.url == receiver.url("/task_handler") and request.http_method == tasks_v2.HttpMethod.POST
    assert json.loads(request.body) == {"greeting": "hola"}
    assert {k.lower(): v for k, v in request.headers.items()}["content-type"] == "application/json"
    assert abs((stored.schedule_time - expected_at).total_seconds()) < 10
    assert stored.dispatch_deadline.total_seconds() == 900
    assert receiver.received() == []


@pytest.mark.usefixtures("on_emulator")
def test_create_http_task_is_delivered(new_queue, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    sample("create_http_task").create_http_task(PROJECT, LOCATION, new_queue(), receiver.url("/task_handler"),
                                                json_payload={"greeting": "hola"})

    delivery = wait_until(lambda: receiver.received("/task_handler"), timeout=10, what="delivery")[0]
    assert delivery.method == "POST" and json.loads(delivery.body) == {"greeting": "hola"}
    assert delivery.header("Content-Type") == "application/json"


@pytest.mark.usefixtures("on_emulator")
def test_create_http_task_with_token_delivers_an_oidc_token(samples_emulator: Emulator, new_queue,  # type: ignore[no-untyped-def]
                                                            receiver: Receiver) -> None:
    url = receiver.url("/secure")
    task = sample("create_http_task_with_token").create_http_task_with_token(
        PROJECT, LOCATION, new_queue(), url, b"my-payload", ACCOUNT)

    assert task.http_request.oidc_token.service_account_email == ACCOUNT
    delivery = wait_until(lambda: receiver.received("/secure"), timeout=10, what="delivery")[0]
    assert delivery.body == b"my-payload"
    scheme, _, token = (delivery.header("Authorization") or "").partition(" ")
    claims = id_token.verify_token(token, google.auth.transport.requests.Request(), audience=url,
                                   certs_url=samples_emulator.endpoint + "/oauth2/v3/certs")
    assert scheme == "Bearer" and claims["email"] == ACCOUNT and claims["aud"] == url


def run_google_tests(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """pytest on ``python/*_test.py`` as published, in a process whose client is the emulator's."""
    argv = [sys.executable, "-m", "pytest", "-c", str(HERE / "upstream-pytest.ini"), "--rootdir", str(SAMPLES),
            "-p", "tests.emulator.samples.upstream_plugin", "-q", str(SAMPLES)]
    full_env = {**os.environ, **env, "GOOGLE_CLOUD_PROJECT": PROJECT, "TEST_QUEUE_LOCATION": LOCATION,
                "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(argv, capture_output=True, text=True, timeout=100, env=full_env, cwd=SAMPLES)


def test_googles_own_sample_tests_pass(emulator_env: dict[str, str], checker) -> None:  # type: ignore[no-untyped-def]
    before = {q.name for q in checker.list_queues(parent=PARENT)}

    done = run_google_tests(emulator_env)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "5 passed" in done.stdout, done.stdout[-1000:]
    assert {q.name for q in checker.list_queues(parent=PARENT)} == before, "a sample test left its queue behind"
