"""Fixtures for the emulator conformance suite: a real emulator subprocess, a real HTTP
target, the official Python client, and gcloud pointed at the emulator."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.emulator.receiver import Receiver
from tests.support.servers import ServerProcess, free_port, http_ok, need_binary

PROJECT, LOCATION = "test-project", "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
REPO_ROOT = Path(__file__).resolve().parents[2]


def healthy(port: int) -> bool:
    """True when ``GET /healthz`` answers 200."""
    return http_ok(port)


@dataclass
class Emulator:
    """A running emulator subprocess and how to reach it."""

    port: int
    db: Path
    log: Path
    process: ServerProcess

    @property
    def endpoint(self) -> str:
        """Base URL (what ``api_endpoint`` and the gcloud override take)."""
        return f"http://127.0.0.1:{self.port}"

    def client(self, transport: str = "rest"):  # type: ignore[no-untyped-def]
        """The official client, anonymous, aimed at this emulator: ``"rest"`` or ``"grpc"``
        (the client's default transport, over an insecure channel to the same port)."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import tasks_v2

        if transport == "grpc":
            import grpc
            from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

            channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
            return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
        return tasks_v2.CloudTasksClient(transport="rest", credentials=AnonymousCredentials(),
                                         client_options=ClientOptions(api_endpoint=self.endpoint))


def start_emulator(tmp: Path, port: int | None = None, db: Path | None = None, extra: list[str] | None = None) -> Emulator:
    """Start ``python -m infra.emulator`` on a free port and wait for /healthz."""
    port = port or free_port()
    db = db or tmp / "tasks.db"
    log = tmp / f"emulator-{port}.log"
    argv = [sys.executable, "-m", "ordertasks.infra.emulator", "--port", str(port), "--db", str(db), *(extra or [])]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = ServerProcess(argv, port, env=env, log_path=log, ready=lambda: healthy(port)).start(timeout=30)
    return Emulator(port, db, log, process)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One emulator shared by tests that each use their own queue."""
    emu = start_emulator(tmp_path_factory.mktemp("emulator"))
    try:
        yield emu
    finally:
        emu.process.stop()


TRANSPORTS = ("grpc", "rest")


@pytest.fixture(scope="session", params=TRANSPORTS)
def client(emulator: Emulator, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """CloudTasksClient on the shared emulator, once per transport (gRPC, REST): every client
    test runs over both, so the two transports cannot drift apart."""
    return emulator.client(request.param)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A fresh recording HTTP target."""
    target = Receiver().start()
    try:
        yield target
    finally:
        target.stop()


QueueFactory = Callable[..., str]


@pytest.fixture
def make_queue(client) -> QueueFactory:  # type: ignore[no-untyped-def]
    """Create a uniquely named queue; keyword arguments set rate limits and retry config.

    ``rate=``, ``burst=``, ``concurrent=``, ``attempts=``, ``min_backoff=``, ``max_backoff=``,
    ``doublings=``, ``retry_duration=`` (seconds).  Returns the queue's full name.
    """
    from google.protobuf import duration_pb2

    def seconds(value: float) -> duration_pb2.Duration:
        duration = duration_pb2.Duration()
        duration.FromNanoseconds(int(value * 1e9))
        return duration

    def make(rate: float = 500, burst: int = 100, concurrent: int = 1000, attempts: int = 100,
             min_backoff: float = 0.1, max_backoff: float = 3600, doublings: int = 16,
             retry_duration: float = 0) -> str:
        name = f"{PARENT}/queues/q-{uuid.uuid4().hex[:12]}"
        retry = {"max_attempts": attempts, "min_backoff": seconds(min_backoff),
                 "max_backoff": seconds(max_backoff), "max_doublings": doublings}
        if retry_duration:
            retry["max_retry_duration"] = seconds(retry_duration)
        client.create_queue(parent=PARENT, queue={
            "name": name,
            "rate_limits": {"max_dispatches_per_second": rate, "max_burst_size": burst,
                            "max_concurrent_dispatches": concurrent},
            "retry_config": retry,
        })
        return name
    return make


@pytest.fixture(scope="session")
def gcloud(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """gcloud configured for the shared emulator (skips locally, fails in CI, without gcloud)."""
    from tests.emulator.clients import Gcloud

    binary = need_binary("gcloud", "the emulator must work with `gcloud tasks`")
    return Gcloud(binary, emulator, tmp_path_factory.mktemp("gcloud-config"))
