"""``ordertasks console --backend cloud`` runs the production wiring (Firestore, Cloud Tasks,
application-default credentials), here pointed at the Firestore and Cloud Tasks emulators
with a throwaway service-account key, and replays go to the deployed gen2 function, not to
the operator's shell."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.cloud import tasks_v2

from ordertasks.handlers.backends.firestore import FirestoreStore
from ordertasks.infra.config import Settings
from ordertasks.producer.replay_target import cloud_function_url
from tests.console.conftest import TOKEN, failure
from tests.contract.conftest import firestore_client_for, sanitized_project_id
from tests.emulator.conftest import Emulator
from tests.support.servers import ServerProcess, free_port, http_ok

pytestmark = pytest.mark.firestore


def service_account_key(path: Path, project: str) -> Path:
    """A syntactically real key file (never used against Google: both APIs are emulated)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path.write_text(json.dumps({"type": "service_account", "project_id": project, "private_key_id": "k1",
                                "private_key": pem, "client_email": f"operator@{project}.iam.gserviceaccount.com",
                                "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}))
    return path


@pytest.fixture
def cloud_console(firestore_emulator: str, tasks_emulator: Emulator, catalog_path: Path,
                  tmp_path: Path) -> Iterator[tuple[str, Any, Any]]:
    project = sanitized_project_id()
    catalog = Settings(catalog_path=catalog_path, project=project).catalog()
    tasks = tasks_emulator.client()
    for name in catalog.queues:
        tasks.create_queue(parent=f"projects/{project}/locations/{catalog.region}",
                           queue=tasks_v2.Queue(name=f"projects/{project}/locations/{catalog.region}/queues/{name}"))
    store = FirestoreStore(firestore_client_for(project))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERTASKS_", "GOOGLE_"))}
    env |= {"ORDERTASKS_CONFIG": str(catalog_path), "CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{tasks_emulator.port}",
            "FIRESTORE_EMULATOR_HOST": firestore_emulator,
            "GOOGLE_APPLICATION_CREDENTIALS": str(service_account_key(tmp_path / "key.json", project))}
    server = ServerProcess([sys.executable, "-m", "cli", "console", "--port", str(port), "--backend", "cloud",
                            "--project", project, "--location", catalog.region], port, env=env,
                           log_path=tmp_path / "console.log", ready=lambda: http_ok(port))
    server.start(timeout=60)
    try:
        yield f"http://127.0.0.1:{port}", store, (tasks, catalog)
    finally:
        server.stop()


def test_cloud_console_reads_firestore_and_replays_to_the_deployed_function(cloud_console: Any) -> None:
    base, store, (tasks, catalog) = cloud_console
    entry = store.failed.record_failure(failure("ord-cloud-1", "notify_warehouse", catalog=catalog))
    queue = f"projects/{catalog.project}/locations/{catalog.region}/queues/{catalog.kinds['notify_warehouse'].queue}"
    tasks.pause_queue(name=queue)                      # keep the replay where the test can read it
    session = requests.Session()
    listing = session.get(f"{base}/failed", timeout=30)
    assert listing.status_code == 200 and entry.id in listing.text
    assert f"cloud · project {catalog.project}" in listing.text
    confirm = session.get(f"{base}/failed/{entry.id}/replay", timeout=30)
    token = TOKEN.search(confirm.text)
    assert token
    done = session.post(f"{base}/failed/{entry.id}/replay", data={"csrf_token": token.group(1)}, timeout=30)
    assert done.status_code == 200 and re.search(r"replay created", done.text), done.text[-2000:]
    replay = tasks.get_task(request={"name": f"{entry.task_name}-r1", "response_view": tasks_v2.Task.View.FULL})
    function = cloud_function_url(catalog)
    assert (replay.http_request.url, replay.http_request.oidc_token.audience) == (function, function)
    assert replay.http_request.oidc_token.service_account_email == catalog.service_account_email("dispatcher")
    assert store.failed.get_failed(entry.id).status == "replayed"
