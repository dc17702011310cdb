"""The producer's Cloud Tasks client: gRPC by default (as against the real service), REST on
request, both against the real emulator."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport, CloudTasksRestTransport

from ordertasks.handlers.errors import ConfigurationError
from ordertasks.infra.config import Settings
from ordertasks.producer import wiring
from ordertasks.producer.enqueue import queue_path
from tests.producer.conftest import Emulator, make_settings


def test_transport_setting_defaults_to_grpc_and_accepts_rest() -> None:
    assert Settings.from_env({}).tasks.transport == "grpc"
    assert Settings.from_env({"ORDERTASKS_TASKS_TRANSPORT": "rest"}).tasks.transport == "rest"


def test_unknown_transport_stops_start_up_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="ORDERTASKS_TASKS_TRANSPORT='soap'"):
        Settings.from_env({"ORDERTASKS_TASKS_TRANSPORT": "soap"})


@pytest.mark.parametrize("transport, kind", [("grpc", CloudTasksGrpcTransport), ("rest", CloudTasksRestTransport)])
def test_client_on_the_emulator_uses_the_chosen_transport(tmp_path: Path, emulator: Emulator, transport: str,
                                                          kind: type) -> None:
    settings = make_settings(tmp_path, emulator.host, tasks={"transport": transport})
    catalog = settings.catalog()
    client = wiring.tasks_client(settings)

    queue = next(iter(catalog.queues))
    fetched = client.get_queue(name=queue_path(catalog.project, catalog.region, queue))

    assert isinstance(client.transport, kind)
    assert fetched.name.endswith("/queues/" + queue)
