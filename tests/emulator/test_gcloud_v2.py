"""``gcloud tasks`` on the newer v2 surface: CMEK config, App Engine routing host, and Cloud
Tasks' own wording of its errors (gcloud has no batch commands, and no flag for a task's
retryConfig or for maxBurstSize)."""

from __future__ import annotations

import datetime as dt

from ordertasks.infra.emulator.errors import TASK_EXISTED_RECENTLY
from tests.emulator.clients import Gcloud
from tests.emulator.conftest import LOCATION, PROJECT
from tests.emulator.test_gcloud import queue_id

KMS_KEY = f"projects/{PROJECT}/locations/{LOCATION}/keyRings/shop/cryptoKeys/tasks"


def in_an_hour() -> str:
    """``--schedule-time`` an hour from now."""
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def one_line(text: str) -> str:
    """gcloud's stderr with its line wrapping undone."""
    return " ".join(text.split())


def test_cmek_config_update_describe_and_clear(gcloud: Gcloud) -> None:
    updated = gcloud.run("cmek-config", "update", f"--kms-key-name={KMS_KEY}")

    assert f"Updated Cmek config for KMS key: [{KMS_KEY}]" in updated.stderr
    assert gcloud.describe("cmek-config", "describe") == {
        "kmsKey": KMS_KEY, "name": f"projects/{PROJECT}/locations/{LOCATION}/cmekConfig"}
    gcloud.run("cmek-config", "update", "--clear-kms-key")
    assert "kmsKey" not in gcloud.describe("cmek-config", "describe")


def test_app_engine_task_shows_the_host_it_is_routed_to(gcloud: Gcloud) -> None:
    queue = queue_id()
    gcloud.run("queues", "create", queue)

    gcloud.run("create-app-engine-task", "ae-1", f"--queue={queue}", "--relative-uri=/work",
               "--routing=service:worker,version:v2", f"--schedule-time={in_an_hour()}")

    routing = gcloud.describe("describe", "ae-1", f"--queue={queue}")["appEngineHttpRequest"]["appEngineRouting"]
    assert routing == {"service": "worker", "version": "v2", "host": f"v2.worker.{PROJECT}.appspot.com"}


def test_errors_carry_cloud_tasks_wording(gcloud: Gcloud) -> None:
    queue = queue_id()
    gcloud.run("queues", "create", queue)
    gcloud.run("create-http-task", "reused", f"--queue={queue}", "--url=http://127.0.0.1:9/",
               f"--schedule-time={in_an_hour()}")
    gcloud.run("delete", "reused", f"--queue={queue}")

    again = gcloud.run("create-http-task", "reused", f"--queue={queue}", "--url=http://127.0.0.1:9/", ok=False)
    bad_id = gcloud.run("create-http-task", "bad id!", f"--queue={queue}", "--url=http://127.0.0.1:9/", ok=False)

    assert f"ALREADY_EXISTS: {TASK_EXISTED_RECENTLY}" in one_line(again.stderr)
    assert ('INVALID_ARGUMENT: Task ID "bad id!" can contain only letters ([A-Za-z]), numbers ([0-9]), hyphens (-), '
            "or underscores (_). Task ID must between 1 and 500 characters.") in one_line(bad_id.stderr)
    assert "Definition of task ID" in bad_id.stderr  # the google.rpc.Help detail, as gcloud shows it
