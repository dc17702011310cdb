"""``gcloud tasks`` against the emulator, checked the way a person reads the output."""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
import uuid
from pathlib import Path

import google.auth.transport.requests
import pytest
import json
from google.oauth2 import id_token

from tests.emulator.conftest import LOCATION, PROJECT, Emulator
from tests.emulator.receiver import Receiver, Reply
from tests.support.servers import need_binary, wait_until

ACCOUNT = "dispatcher@test-project.iam.gserviceaccount.com"


class Gcloud:
    """Runs gcloud with its Cloud Tasks endpoint pointed at the emulator and no credentials."""

    def __init__(self, binary: str, emulator: Emulator, config_dir: Path) -> None:
        self.binary = binary
        self.env = {**os.environ,
                    "CLOUDSDK_CONFIG": str(config_dir),
                    "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDTASKS": emulator.endpoint + "/",
                    "CLOUDSDK_AUTH_DISABLE_CREDENTIALS": "true",
                    "CLOUDSDK_CORE_PROJECT": PROJECT,
                    "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
                    "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
                    "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
                    "CLOUDSDK_SURVEY_DISABLE_PROMPTS": "true"}

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        """``gcloud tasks ARGS --location=L``; fail the test unless the exit status matches ``ok``."""
        proc = subprocess.run([self.binary, "tasks", *args, f"--location={LOCATION}"], env=self.env,
                              capture_output=True, text=True, timeout=60)
        assert (proc.returncode == 0) == ok, f"gcloud tasks {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def describe(self, *args: str) -> dict:  # type: ignore[type-arg]
        """Run a describe-style command and parse its output (JSON: no YAML parser needed)."""
        return json.loads(self.run(*args, "--format=json").stdout)


@pytest.fixture(scope="module")
def gcloud(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Gcloud:
    """gcloud configured for the shared emulator (skips locally, fails in CI, without gcloud)."""
    binary = need_binary("gcloud", "the emulator must work with `gcloud tasks`")
    return Gcloud(binary, emulator, tmp_path_factory.mktemp("gcloud-config"))


def queue_id() -> str:
    """A fresh queue id."""
    return f"gq-{uuid.uuid4().hex[:10]}"


def test_queue_lifecycle(gcloud: Gcloud) -> None:
    queue = queue_id()

    created = gcloud.run("queues", "create", queue, "--max-attempts=4", "--min-backoff=0.5s", "--max-backoff=20s",
                         "--max-doublings=3", "--max-dispatches-per-second=12", "--max-concurrent-dispatches=6")
    assert f"Created queue [{LOCATION}/{queue}]" in created.stderr
    described = gcloud.describe("queues", "describe", queue)
    assert described["name"] == f"projects/{PROJECT}/locations/{LOCATION}/queues/{queue}"
    assert described["state"] == "RUNNING"
    assert described["rateLimits"] == {"maxDispatchesPerSecond": 12.0, "maxConcurrentDispatches": 6, "maxBurstSize": 100}
    assert described["retryConfig"] == {"maxAttempts": 4, "minBackoff": "0.500s", "maxBackoff": "20s", "maxDoublings": 3}

    gcloud.run("queues", "update", queue, "--max-attempts=9", "--clear-max-doublings")
    updated = gcloud.describe("queues", "describe", queue)
    assert updated["retryConfig"]["maxAttempts"] == 9
    assert updated["retryConfig"]["maxDoublings"] == 16  # cleared back to the default
    assert updated["rateLimits"]["maxDispatchesPerSecond"] == 12.0  # not in the mask: unchanged

    gcloud.run("queues", "pause", queue)
    assert gcloud.describe("queues", "describe", queue)["state"] == "PAUSED"
    listed = gcloud.run("queues", "list").stdout
    assert any(line.split()[:2] == [queue, "PAUSED"] for line in listed.splitlines())
    gcloud.run("queues", "resume", queue)
    assert gcloud.describe("queues", "describe", queue)["state"] == "RUNNING"
    gcloud.run("queues", "purge", queue)
    assert "purgeTime" in gcloud.describe("queues", "describe", queue)

    gcloud.run("queues", "delete", queue)
    missing = gcloud.run("queues", "describe", queue, ok=False)
    assert "NOT_FOUND" in missing.stderr and "Queue does not exist" in missing.stderr


def test_http_task_lifecycle(gcloud: Gcloud, emulator: Emulator, receiver: Receiver) -> None:
    queue = queue_id()
    gcloud.run("queues", "create", queue)
    eta = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).replace(microsecond=0)
    eta_text = eta.strftime("%Y-%m-%dT%H:%M:%SZ")

    gcloud.run("create-http-task", "job-1", f"--queue={queue}", f"--url={receiver.url('/gcloud')}",
               f"--schedule-time={eta_text}", f"--oidc-service-account-email={ACCOUNT}",
               f"--oidc-token-audience={receiver.url('/')}", "--method=PUT", "--header=X-Order:42",
               '--body-content={"order": 42}')
    task = gcloud.describe("describe", "job-1", f"--queue={queue}", "--response-view=full")
    assert task["scheduleTime"] == eta_text
    assert task["httpRequest"]["httpMethod"] == "PUT"
    assert task["httpRequest"]["headers"]["X-Order"] == "42"
    assert task["httpRequest"]["oidcToken"] == {"serviceAccountEmail": ACCOUNT, "audience": receiver.url("/")}
    assert base64.b64decode(task["httpRequest"]["body"]) == b'{"order": 42}'
    assert task["view"] == "FULL"
    assert "body" not in gcloud.describe("describe", "job-1", f"--queue={queue}")["httpRequest"]

    gcloud.run("run", "job-1", f"--queue={queue}")
    request = wait_until(lambda: receiver.received("/gcloud"), timeout=10, what="forced dispatch")[0]
    assert request.method == "PUT" and request.body == b'{"order": 42}'
    claims = id_token.verify_token(request.headers["Authorization"].split()[1], google.auth.transport.requests.Request(),
                                   audience=receiver.url("/"), certs_url=emulator.endpoint + "/oauth2/v1/certs")
    assert claims["email"] == ACCOUNT

    gcloud.run("create-http-task", "job-2", f"--queue={queue}", f"--url={receiver.url('/never')}",
               f"--schedule-time={eta_text}")
    gcloud.run("delete", "job-2", f"--queue={queue}")
    gone = gcloud.run("describe", "job-2", f"--queue={queue}", ok=False)
    assert "NOT_FOUND" in gone.stderr
    again = gcloud.run("create-http-task", "job-2", f"--queue={queue}", f"--url={receiver.url('/never')}", ok=False)
    assert "ALREADY_EXISTS" in again.stderr and "existed too recently" in again.stderr


def test_task_list_table(gcloud: Gcloud, receiver: Receiver) -> None:
    queue = queue_id()
    gcloud.run("queues", "create", queue, "--min-backoff=600s", "--max-backoff=600s")
    receiver.script("/fail", [Reply(500)])
    eta = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)).replace(microsecond=0)
    eta_text = eta.strftime("%Y-%m-%dT%H:%M:%SZ")
    gcloud.run("create-http-task", "later", f"--queue={queue}", f"--url={receiver.url('/x')}", f"--schedule-time={eta_text}")
    gcloud.run("create-http-task", "failing", f"--queue={queue}", f"--url={receiver.url('/fail')}")
    wait_until(lambda: gcloud.describe("describe", "failing", f"--queue={queue}").get("responseCount") == 1,
               timeout=10, what="the failing task's first response")
    retry_at = gcloud.describe("describe", "failing", f"--queue={queue}")["scheduleTime"]

    table = gcloud.run("list", f"--queue={queue}",
                       "--format=table(name.basename(), scheduleTime, dispatchCount)").stdout

    # What a person sees (gcloud keeps the labels of its default task list format).
    width = max(len(retry_at), len(eta_text))
    assert table == (f"TASK_NAME  {'SCHEDULE_TIME':<{width}}  DISPATCH_ATTEMPTS\n"
                     f"failing    {retry_at:<{width}}  1\n"
                     f"later      {eta_text:<{width}}  0\n")
