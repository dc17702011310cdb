"""Fixtures for running Google's published Cloud Tasks samples, unchanged, on the emulator.

``python/`` and ``node/`` hold the samples as fetched (README.md names the commits); they are
run by the tests here, never collected: their ``*_test.py`` files expect a cloud project.
The samples get an emulator of their own whose App Engine host is a recording receiver, so the
App Engine samples' tasks are delivered somewhere a test can look.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.emulator.conftest import PARENT, TRANSPORTS, Emulator, start_emulator
from tests.emulator.receiver import Receiver

collect_ignore = ["python", "node"]
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def app_engine() -> Iterator[Receiver]:
    """The samples emulator's App Engine host: records what App Engine tasks deliver."""
    target = Receiver().start()
    try:
        yield target
    finally:
        target.stop()


@pytest.fixture(scope="session")
def samples_emulator(tmp_path_factory: pytest.TempPathFactory, app_engine: Receiver) -> Iterator[Emulator]:
    """An emulator for the samples, App Engine tasks going to :func:`app_engine`."""
    emu = start_emulator(tmp_path_factory.mktemp("samples-emulator"),
                         extra=["--app-engine-host", app_engine.url("").rstrip("/")])
    try:
        yield emu
    finally:
        emu.process.stop()


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """The transport the samples' client uses: ``grpc`` (their default) or ``rest``."""
    return str(request.param)


@pytest.fixture
def emulator_env(samples_emulator: Emulator, transport: str) -> dict[str, str]:
    """What names the emulator to a sample's process, as it does to our own wiring."""
    return {"CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{samples_emulator.port}", "ORDERTASKS_TASKS_TRANSPORT": transport}


@pytest.fixture
def checker(samples_emulator: Emulator):  # type: ignore[no-untyped-def]
    """Our own client on the samples emulator (gRPC), to read the state a sample left."""
    return samples_emulator.client("grpc")


@pytest.fixture
def new_queue(checker) -> Iterator[Callable[[], str]]:  # type: ignore[no-untyped-def]
    """Create a uniquely named queue (its short id returned); every one is deleted afterwards,
    so no task a sample scheduled is left to dispatch."""
    from google.api_core import exceptions

    made: list[str] = []

    def make() -> str:
        queue_id = f"sample-{uuid.uuid4().hex[:12]}"
        checker.create_queue(parent=PARENT, queue={"name": f"{PARENT}/queues/{queue_id}"})
        made.append(queue_id)
        return queue_id
    yield make
    for queue_id in made:
        try:
            checker.delete_queue(name=f"{PARENT}/queues/{queue_id}")
        except exceptions.NotFound:
            pass
