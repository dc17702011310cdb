"""Session-wide fixtures: the Firestore emulator and shared helpers."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import ServerProcess, free_port, http_ok, need_binary


def _firestore_answers(port: int) -> bool:
    return http_ok(port, "/")


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start ``gcloud emulators firestore`` on a free port; yield ``host:port``.

    Skips locally when gcloud or Java is missing; fails under REQUIRE_EMULATORS=1.
    """
    gcloud = need_binary("gcloud", "the Firestore emulator ships with the gcloud SDK")
    need_binary("java", "the Firestore emulator runs on Java")
    port = free_port()
    log = tmp_path_factory.mktemp("firestore") / "emulator.log"
    server = ServerProcess([gcloud, "emulators", "firestore", "start", f"--host-port=127.0.0.1:{port}"],
                           port, env=dict(os.environ), log_path=log, ready=lambda: _firestore_answers(port))
    server.start(timeout=90)
    host = f"127.0.0.1:{port}"
    previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = host
    try:
        yield host
    finally:
        server.stop()
        if previous is None:
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = previous


@pytest.fixture
def firestore_client(firestore_emulator: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A Firestore client on the emulator, in a project unique to this test (isolation)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    # The emulator accepts project ids of lowercase letters, digits and hyphens only.
    slug = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower())[:20].strip("-")
    project = f"test-{slug}-{os.urandom(3).hex()}"
    return firestore.Client(project=project, credentials=AnonymousCredentials())


@pytest.fixture
def repo_root() -> Path:
    """The repository root."""
    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def fake_gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """fake-gcs-server on a free loopback port for the whole session; yield its base URL.

    Skips locally when its wheel is missing; fails under REQUIRE_EMULATORS=1.
    """
    from tests.support.gcs_server import running_fake_gcs

    with running_fake_gcs(tmp_path_factory.mktemp("fake-gcs")) as url:
        yield url
