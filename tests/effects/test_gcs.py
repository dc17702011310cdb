"""GcsBlobStore with the real google-cloud-storage client against fake-gcs-server.

The write-once contract itself is in ``tests/contract/test_blob_store.py``; here: the invoice
effect through GCS, the stored object's metadata, and how each failure the API can answer
maps onto the error tree. fake-gcs-server does not fail on demand, so those cases put a
fault proxy between the client and it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.api_core.retry import Retry

from ordertasks.handlers.backends.gcs import GcsBlobStore
from ordertasks.handlers.errors import DependencyUnavailable, Rejected, Throttled
from ordertasks.handlers.kind import EffectContext
from ordertasks.handlers.kinds.generate_invoice import generate_invoice
from tests.effects.orders import eur_order, task_for
from tests.support.fault_proxy import FaultProxy, running_fault_proxy
from tests.support.gcs_server import create_bucket, storage_client
from tests.support.servers import free_port


@pytest.fixture
def bucket_name(fake_gcs_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the session's fake-gcs-server."""
    name = f"invoices-{uuid.uuid4().hex[:12]}"
    create_bucket(storage_client(monkeypatch, fake_gcs_server), name)
    return name


@pytest.fixture
def client(fake_gcs_server: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A storage client on fake-gcs-server (through ``STORAGE_EMULATOR_HOST``)."""
    return storage_client(monkeypatch, fake_gcs_server)


@pytest.fixture
def store(client: Any, bucket_name: str) -> GcsBlobStore:
    """A store on a fresh bucket without client-side retries (each test sees one answer)."""
    return GcsBlobStore(client, bucket_name, retry=None, timeout=5)


@pytest.fixture
def proxy(fake_gcs_server: str) -> Iterator[FaultProxy]:
    """A fault proxy in front of fake-gcs-server that fails object uploads and downloads only."""
    with running_fault_proxy(fake_gcs_server, fail_paths=("/upload/", "/download/")) as running:
        yield running


def proxied_store(proxy: FaultProxy, bucket_name: str, monkeypatch: pytest.MonkeyPatch,
                  retry: Retry | None = None) -> GcsBlobStore:
    """A store whose client talks to fake-gcs-server through ``proxy``."""
    return GcsBlobStore(storage_client(monkeypatch, proxy.url), bucket_name, retry=retry, timeout=5)


def test_object_keeps_its_content_type(store: GcsBlobStore, client: Any, bucket_name: str) -> None:
    store.put_once("invoices/A1.pdf", b"%PDF first", "application/pdf")
    blob = client.bucket(bucket_name).get_blob("invoices/A1.pdf")
    assert (blob.content_type, blob.size) == ("application/pdf", len(b"%PDF first"))


def test_second_write_does_not_add_a_generation(store: GcsBlobStore, client: Any, bucket_name: str) -> None:
    store.put_once("invoices/A1.pdf", b"%PDF first", "application/pdf")
    generation = client.bucket(bucket_name).get_blob("invoices/A1.pdf").generation
    assert store.put_once("invoices/A1.pdf", b"%PDF second", "application/pdf") is False
    assert client.bucket(bucket_name).get_blob("invoices/A1.pdf").generation == generation


def test_generate_invoice_through_gcs(store: GcsBlobStore, make_context: Callable[..., EffectContext]) -> None:
    ctx = make_context(blobs=store)
    task = task_for("generate_invoice", "A1001", eur_order())
    first = generate_invoice(task, ctx)
    assert first["written"] is True and first["path"] == "invoices/A1001.pdf"
    assert generate_invoice(task, ctx) == first | {"written": False, "created": False}
    assert (store.get("invoices/A1001.pdf") or b"").startswith(b"%PDF")


def test_missing_bucket_is_rejected_with_what_to_check(client: Any) -> None:
    store = GcsBlobStore(client, f"no-such-{uuid.uuid4().hex[:8]}", retry=None, timeout=5)
    with pytest.raises(Rejected, match="bucket exists and the handler's service account may create objects"):
        store.put_once("invoices/A1.pdf", b"x", "application/pdf")


@pytest.mark.parametrize("status, error", [
    (500, DependencyUnavailable), (503, DependencyUnavailable), (408, DependencyUnavailable),
    (429, Throttled), (403, Rejected), (404, Rejected),
])
def test_error_statuses_map_to_the_error_tree(status: int, error: type[Exception], proxy: FaultProxy,
                                              bucket_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = proxied_store(proxy, bucket_name, monkeypatch)
    proxy.fail_next.append(status)
    with pytest.raises(error):
        store.put_once("invoices/A1.pdf", b"x", "application/pdf")
    if status == 404:
        return  # a 404 on download means "no such object": get() answers None (contract tests)
    proxy.fail_next.append(status)
    with pytest.raises(error):
        store.get("invoices/A1.pdf")


def test_closed_port_is_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    client = storage_client(monkeypatch, f"http://127.0.0.1:{free_port()}")   # nothing listens there
    store = GcsBlobStore(client, "invoices-test", retry=None, timeout=1)
    with pytest.raises(DependencyUnavailable, match="unavailable"):
        store.put_once("invoices/A1.pdf", b"x", "application/pdf")
    with pytest.raises(DependencyUnavailable):
        store.get("invoices/A1.pdf")


def test_a_short_client_retry_rides_out_one_503(proxy: FaultProxy, bucket_name: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    quick = Retry(predicate=lambda exc: True, initial=0.01, maximum=0.05, timeout=5)
    store = proxied_store(proxy, bucket_name, monkeypatch, retry=quick)
    proxy.fail_next.append(503)
    assert store.put_once("invoices/A1.pdf", b"x", "application/pdf") is True
    assert proxy.fail_next == [] and store.get("invoices/A1.pdf") == b"x"
