"""``gcloud tasks`` against the emulator, checked the way a person reads the output."""

from __future__ import annotations

import base64
import datetime as dt
import uuid

import google.auth.transport.requests
from google.oauth2 import id_token

from tests.emulator.clients import Gcloud
from tests.emulator.conftest import LOCATION, PROJECT, Emulator
from tests.emulator.receiver import Receiver, Reply
from tests.support.servers import wait_until

ACCOUNT = "dispatcher@test-project.iam.gserviceaccount.com"


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


def test_queue_http_target_overrides_are_honoured_at_dispatch(gcloud: Gcloud, emulator: Emulator,
                                                               receiver: Receiver) -> None:
    queue = queue_id()
    gcloud.run("queues", "create", queue)

    updated = gcloud.run("queues", "update", queue,
                         f"--http-uri-override=scheme:http,host:127.0.0.1,port:{receiver.port},path:/pinned,mode:always",
                         f"--http-oidc-service-account-email-override={ACCOUNT}",
                         f"--http-oidc-token-audience-override={receiver.url('/')}")
    assert f"Updated queue [{LOCATION}/{queue}]" in updated.stderr
    target = gcloud.describe("queues", "describe", queue)["httpTarget"]
    assert target["uriOverride"]["host"] == "127.0.0.1" and target["uriOverride"]["port"] == str(receiver.port)
    assert target["oidcToken"] == {"serviceAccountEmail": ACCOUNT, "audience": receiver.url("/")}

    gcloud.run("create-http-task", "pinned-1", f"--queue={queue}", "--url=https://elsewhere.invalid/ignored")
    request = wait_until(lambda: receiver.received("/pinned"), timeout=10, what="delivery to the pinned target")[0]
    claims = id_token.verify_token(request.headers["Authorization"].split()[1], google.auth.transport.requests.Request(),
                                   audience=receiver.url("/"), certs_url=emulator.endpoint + "/oauth2/v1/certs")
    assert claims["email"] == ACCOUNT


def test_buffer_sends_through_the_queue_target(gcloud: Gcloud, receiver: Receiver) -> None:
    queue = queue_id()
    gcloud.run("queues", "create", queue)
    gcloud.run("queues", "update", queue, f"--http-uri-override=scheme:http,host:127.0.0.1,port:{receiver.port},path:/buffered")

    buffered = gcloud.run("buffer", f"--queue={queue}", "--task-id=buf-1")

    assert f"Buffered task in queue [{LOCATION}/{queue}]" in buffered.stderr
    request = wait_until(lambda: receiver.received("/buffered"), timeout=10, what="buffered delivery")[0]
    assert request.headers["X-CloudTasks-TaskName"] == "buf-1"
    refused = gcloud.run("buffer", f"--queue={queue}", "--task-id=buf-1", ok=False)
    assert "ALREADY_EXISTS" in refused.stderr


def test_iam_policy_binding(gcloud: Gcloud) -> None:
    queue = queue_id()
    gcloud.run("queues", "create", queue)
    empty = gcloud.describe("queues", "get-iam-policy", queue)
    assert "bindings" not in empty and empty["etag"]

    added = gcloud.run("queues", "add-iam-policy-binding", queue, f"--member=serviceAccount:{ACCOUNT}",
                       "--role=roles/cloudtasks.enqueuer")

    assert f"Updated IAM policy for queue [{queue}]" in added.stderr
    policy = gcloud.describe("queues", "get-iam-policy", queue)
    assert policy["bindings"] == [{"members": [f"serviceAccount:{ACCOUNT}"], "role": "roles/cloudtasks.enqueuer"}]
    assert policy["etag"] != empty["etag"]
    bad = gcloud.run("queues", "add-iam-policy-binding", queue, "--member=nobody", "--role=roles/cloudtasks.enqueuer",
                     ok=False)
    # gcloud adds the member to the existing binding (members[1]) and wraps long error lines.
    assert "INVALID_ARGUMENT: policy.bindings[0].members[1]: invalid member 'nobody'" in " ".join(bad.stderr.split())
