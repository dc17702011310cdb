"""The ``BlobStore`` contract (write-once, never partial) over every backend.

``localdir`` is the local stack's invoice directory; ``gcs`` is ``GcsBlobStore`` with the
real google-cloud-storage client against fake-gcs-server, which enforces
``ifGenerationMatch`` as GCS does: a second create is a 412 the store reports as "already
written".
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from ordertasks.handlers.ports import BlobStore
from tests.support.gcs_server import create_bucket, storage_client

BLOB_BACKENDS = ["localdir", "gcs"]


@pytest.fixture(params=BLOB_BACKENDS)
def blobs(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh, empty blob store of each backend."""
    if request.param == "localdir":
        from ordertasks.handlers.backends.localdir import LocalDirBlobStore

        return LocalDirBlobStore(tmp_path / "blobs")
    from ordertasks.handlers.backends.gcs import GcsBlobStore

    client = storage_client(monkeypatch, request.getfixturevalue("fake_gcs_server"))
    bucket = f"contract-{uuid.uuid4().hex[:12]}"  # one bucket per test: the server lives all session
    create_bucket(client, bucket)
    return GcsBlobStore(client, bucket, retry=None, timeout=5)


def test_first_write_creates(blobs: BlobStore) -> None:
    assert blobs.put_once("invoices/A1.pdf", b"%PDF first", "application/pdf") is True
    assert blobs.get("invoices/A1.pdf") == b"%PDF first"


def test_second_write_is_already_written_and_keeps_the_first(blobs: BlobStore) -> None:
    blobs.put_once("invoices/A1.pdf", b"%PDF first", "application/pdf")
    assert blobs.put_once("invoices/A1.pdf", b"%PDF second", "application/pdf") is False
    assert blobs.get("invoices/A1.pdf") == b"%PDF first"


def test_missing_object_reads_as_none(blobs: BlobStore) -> None:
    assert blobs.get("invoices/never-written.pdf") is None


def test_paths_are_independent(blobs: BlobStore) -> None:
    assert blobs.put_once("invoices/A1.pdf", b"one", "application/pdf") is True
    assert blobs.put_once("invoices/A2.pdf", b"two", "application/pdf") is True
    assert (blobs.get("invoices/A1.pdf"), blobs.get("invoices/A2.pdf")) == (b"one", b"two")


def test_binary_content_round_trips(blobs: BlobStore) -> None:
    data = bytes(range(256)) * 64
    blobs.put_once("invoices/bin.pdf", data, "application/pdf")
    assert blobs.get("invoices/bin.pdf") == data


def test_concurrent_writers_have_exactly_one_winner(blobs: BlobStore) -> None:
    writers, results, start = 8, {}, threading.Barrier(8)

    def write(n: int) -> None:
        start.wait()
        results[n] = blobs.put_once("invoices/race.pdf", f"writer {n}".encode() * 500, "application/pdf")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [n for n, written in results.items() if written]
    assert len(results) == writers and len(winners) == 1
    assert blobs.get("invoices/race.pdf") == f"writer {winners[0]}".encode() * 500
