"""One port, two transports: what arrives on the emulator's port is told apart by its first
bytes, and both transports answer from the same service with the same codes and messages."""

from __future__ import annotations

import json
import socket
import urllib.request
import uuid

import grpc
import pytest
from google.api_core import exceptions
from google.cloud import tasks_v2

from ordertasks.infra.emulator.errors import QUEUE_NOT_FOUND
from tests.emulator.conftest import PARENT, Emulator

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def raw_rpc(emulator: Emulator, method: str, payload: bytes) -> grpc.RpcError:
    """Call ``method`` of CloudTasks with raw request bytes; return the error it must raise."""
    with grpc.insecure_channel(f"127.0.0.1:{emulator.port}") as channel:
        call = channel.unary_unary(f"/google.cloud.tasks.v2.CloudTasks/{method}")
        with pytest.raises(grpc.RpcError) as caught:
            call(payload, timeout=10)
    return caught.value


def test_http1_and_grpc_share_the_port(emulator: Emulator) -> None:
    name = f"{PARENT}/queues/both-{uuid.uuid4().hex[:8]}"
    emulator.client("grpc").create_queue(parent=PARENT, queue={"name": name})

    with urllib.request.urlopen(f"{emulator.endpoint}/v2/{name}", timeout=5) as resp:
        assert json.loads(resp.read())["name"] == name
    assert emulator.client("rest").get_queue(name=name).name == name


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_same_error_message_on_both_transports(emulator: Emulator, transport: str) -> None:
    with pytest.raises(exceptions.NotFound) as caught:
        emulator.client(transport).get_queue(name=f"{PARENT}/queues/never-created")

    # The REST client puts the URL in front of the server's message; gRPC has the message alone.
    assert caught.value.message.endswith(QUEUE_NOT_FOUND)


def test_grpc_status_codes_are_the_canonical_ones(emulator: Emulator) -> None:
    client = emulator.client("grpc")
    name = f"{PARENT}/queues/codes-{uuid.uuid4().hex[:8]}"
    client.create_queue(parent=PARENT, queue={"name": name})

    with pytest.raises(exceptions.AlreadyExists):
        client.create_queue(parent=PARENT, queue={"name": name})
    with pytest.raises(exceptions.InvalidArgument, match="maxDispatchesPerSecond"):
        client.update_queue(queue={"name": name, "rate_limits": {"max_dispatches_per_second": 501}})
    with pytest.raises(exceptions.InvalidArgument, match="task.httpRequest.url"):
        client.create_task(parent=name, task={"http_request": {"url": "ftp://x/"}})


def test_malformed_grpc_message_is_invalid_argument(emulator: Emulator) -> None:
    error = raw_rpc(emulator, "GetQueue", b"\xff\xff\xff\xff")

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "GetQueue" in (error.details() or "")


def test_grpc_request_without_resource_name_names_the_field(emulator: Emulator) -> None:
    error = raw_rpc(emulator, "GetQueue", tasks_v2.GetQueueRequest.serialize(tasks_v2.GetQueueRequest()))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "name is required"


def test_unknown_grpc_method_is_unimplemented(emulator: Emulator) -> None:
    error = raw_rpc(emulator, "NoSuchMethod", b"")

    assert error.code() == grpc.StatusCode.UNIMPLEMENTED


def test_a_client_that_leaves_mid_preface_does_not_disturb_others(emulator: Emulator) -> None:
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=5) as sock:
        sock.sendall(PREFACE[:10])

    assert emulator.client("grpc").list_queues(parent=PARENT) is not None
    with urllib.request.urlopen(f"{emulator.endpoint}/healthz", timeout=5) as resp:
        assert resp.status == 200


def test_locations_over_grpc(emulator: Emulator) -> None:
    from google.cloud.location import locations_pb2

    client = emulator.client("grpc")
    name = f"{PARENT}/queues/loc-{uuid.uuid4().hex[:8]}"
    client.create_queue(parent=PARENT, queue={"name": name})

    listed = client.list_locations(locations_pb2.ListLocationsRequest(name=PARENT.rsplit("/locations", 1)[0]))
    assert PARENT in [loc.name for loc in listed.locations]
    assert client.get_location(locations_pb2.GetLocationRequest(name=PARENT)).location_id == PARENT.rsplit("/", 1)[1]
