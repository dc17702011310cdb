"""Item 9: on any ports, the dev stack's /internal/* accept a Cloud Tasks token minted for their own URL."""

from __future__ import annotations

import uuid
from typing import Any

from google.api_core.exceptions import NotFound
from google.protobuf import duration_pb2

from ordertasks.handlers.config import Settings, load_catalog
from ordertasks.handlers.settings import TasksSettings
from ordertasks.producer import wiring
from ordertasks.producer.enqueue import queue_path
from tests.devstack.conftest import DevStack, dev  # noqa: F401 - the module-scoped stack fixture
from tests.support.servers import wait_until


def _delivered(client: Any, name: str) -> bool:
    """True once the task is gone (a 2xx); fail at once on a refused attempt."""
    try:
        task = client.get_task(name=name)
    except NotFound:
        return True
    status = task.last_attempt.response_status
    assert not task.last_attempt.dispatch_time or status.code == 0, \
        f"the checkout refused the emulator's token: {status.code} {status.message}"
    return False


def test_internal_endpoints_accept_tokens_for_the_ports_actually_used(dev: DevStack) -> None:  # noqa: F811
    """Attack: none (a denial of service on ourselves): on other ports /internal/* expected aud=:8080 and refused every job."""
    catalog = load_catalog(dev.config)
    client = wiring.tasks_client(Settings(tasks=TasksSettings(emulator_host=f"127.0.0.1:{dev.ports['emulator']}")))
    queue = queue_path(catalog.project, catalog.region, f"sec-aud-{uuid.uuid4().hex[:8]}")
    client.create_queue(parent=queue.rsplit("/queues/", 1)[0], queue={
        "name": queue, "retry_config": {"max_attempts": -1, "min_backoff": duration_pb2.Duration(seconds=60)}})
    task = client.create_task(parent=queue, task={"http_request": {
        "url": f"{dev.checkout}/internal/reconcile", "http_method": "POST",
        "oidc_token": {"service_account_email": catalog.service_account_email("dispatcher"),
                       "audience": f"{dev.checkout}/"}}})
    wait_until(lambda: _delivered(client, task.name), timeout=20, what="the reconcile job to be accepted")
