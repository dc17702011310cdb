"""The official Node client (``@google-cloud/tasks``) on what it has of the newer surface: the
Node snippet of docs/emulator.md runs as printed, and Cloud Tasks' wording of its errors
reaches both transports.  Its v2 client has no batch, CMEK or task retryConfig calls.

Needs ``npm install --prefix tests/emulator/node``; skips locally without it, fails in CI."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ordertasks.infra.emulator.errors import TASK_EXISTED_RECENTLY
from tests.emulator.clients import NODE_DIR, ClientError, NodeDriver
from tests.emulator.conftest import LOCATION, PARENT, REPO_ROOT, Emulator
from tests.emulator.test_matrix import node_binary

DOC = REPO_ROOT / "docs" / "emulator.md"
LATER = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)


def node_snippet() -> str:
    """The ``js`` block under "### Node" in docs/emulator.md."""
    section = DOC.read_text(encoding="utf-8").split("### Node", 1)[1]
    match = re.search(r"```js\n(.*?)```", section, re.S)
    assert match, "docs/emulator.md has no js block under ### Node"
    return match.group(1)


USE_BOTH_CLIENTS = """
(async () => {
  const projectId = await restClient.getProjectId();
  const parent = `projects/${projectId}/locations/%(location)s`;
  const [queue] = await restClient.createQueue({parent, queue: {name: `${parent}/queues/%(queue)s`}});
  const [fetched] = await client.getQueue({name: queue.name});
  console.log(JSON.stringify({projectId, queue: fetched.name}));
  await client.close();
  await restClient.close();
})().catch((err) => { console.error(err); process.exit(1); });
"""


def test_the_docs_node_snippet_runs_and_knows_its_project(emulator: Emulator, tmp_path: Path) -> None:
    node = node_binary()
    queue = f"snippet-{uuid.uuid4().hex[:8]}"
    script = tmp_path / "snippet.js"
    script.write_text(node_snippet().replace("8123", str(emulator.port))
                      + USE_BOTH_CLIENTS % {"location": LOCATION, "queue": queue}, encoding="utf-8")
    env = {**os.environ, "METADATA_SERVER_DETECTION": "none", "NODE_PATH": str(NODE_DIR / "node_modules")}
    env.pop("GOOGLE_CLOUD_PROJECT", None)

    done = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=60, env=env)

    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer == {"projectId": "my-shop-project",
                      "queue": f"projects/my-shop-project/locations/{LOCATION}/queues/{queue}"}


@pytest.fixture(params=["grpc", "rest"])
def node_driver(request: pytest.FixtureRequest, emulator: Emulator) -> Iterator[NodeDriver]:
    """The Node driver over one transport."""
    driver = NodeDriver(node_binary(), emulator, request.param)
    try:
        yield driver
    finally:
        driver.close()


def refusal(driver: NodeDriver, queue: str, name: str) -> ClientError:
    """The error CreateTask with task name ``name`` gets in ``queue``."""
    with pytest.raises(ClientError) as refused:
        driver.create_named_task(f"{PARENT}/queues/{queue}", name, "http://127.0.0.1:9/", LATER)
    return refused.value


def test_errors_reach_node_in_cloud_tasks_wording(node_driver: NodeDriver) -> None:
    queue = f"node-{uuid.uuid4().hex[:8]}"
    node_driver.create_queue(queue)
    node_driver.create_task(queue, "reused", "http://127.0.0.1:9/", LATER, "", "", {})
    node_driver.delete_task(queue, "reused")

    again = refusal(node_driver, queue, f"{PARENT}/queues/{queue}/tasks/reused")
    malformed = refusal(node_driver, queue, "is-this-a-name")
    elsewhere = refusal(node_driver, queue, f"{PARENT}/queues/{queue}-other/tasks/t1")

    assert again.status == "ALREADY_EXISTS" and again.message.endswith(TASK_EXISTED_RECENTLY)
    assert malformed.status == "INVALID_ARGUMENT" and malformed.message.endswith("Task name must be formatted: "
           '"projects/<PROJECT_ID>/locations/<LOCATION_ID>/queues/<QUEUE_ID>/tasks/<TASK_ID>"')
    assert elsewhere.message.endswith(f"The queue name from request ('{PARENT}/queues/{queue}') must be the same "
                                      f"as the queue name in the named task ('{PARENT}/queues/{queue}-other').")
