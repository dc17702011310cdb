"""GcsBlobStore with the real google-cloud-storage client against a local fake JSON API."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from google.api_core.retry import Retry

from handlers.backends.gcs import GcsBlobStore
from handlers.contract import GENERATE_INVOICE
from handlers.errors import DependencyUnavailable, Rejected, Throttled
from handlers.invoice import generate_invoice
from handlers.registry import EffectContext
from tests.effects.fake_gcs import FakeGcs, running_fake_gcs
from tests.effects.orders import eur_order, task_for
from tests.support.servers import free_port


@pytest.fixture
def fake_gcs() -> Iterator[FakeGcs]:
    """The fake GCS JSON API on a free port."""
    with running_fake_gcs() as fake:
        yield fake


@pytest.fixture
def store(fake_gcs: FakeGcs) -> GcsBlobStore:
    """A store on bucket ``invoices-test`` without client-side retries (each test sees one answer)."""
    return GcsBlobStore(fake_gcs.client(), "invoices-test", retry=None, timeout=2)


def test_put_once_creates_then_reports_existing(store: GcsBlobStore, fake_gcs: FakeGcs) -> None:
    assert store.put_once("invoices/A1.pdf", b"%PDF first", "application/pdf") is True
    assert store.put_once("invoices/A1.pdf", b"%PDF second", "application/pdf") is False
    stored = fake_gcs.objects[("invoices-test", "invoices/A1.pdf")]
    assert (stored.data, stored.content_type) == (b"%PDF first", "application/pdf")
    assert store.get("invoices/A1.pdf") == b"%PDF first"
    assert store.get("invoices/missing.pdf") is None


def test_generate_invoice_through_gcs(store: GcsBlobStore, fake_gcs: FakeGcs,
                                      make_context: Callable[..., EffectContext]) -> None:
    ctx = make_context(blobs=store)
    task = task_for(GENERATE_INVOICE, "A1001", eur_order())
    first = generate_invoice(task, ctx)
    assert first["written"] is True and first["path"] == "invoices/A1001.pdf"
    assert generate_invoice(task, ctx) == first | {"written": False}
    assert fake_gcs.objects[("invoices-test", "invoices/A1001.pdf")].data.startswith(b"%PDF")


@pytest.mark.parametrize("status, error", [
    (500, DependencyUnavailable), (503, DependencyUnavailable), (408, DependencyUnavailable),
    (429, Throttled), (403, Rejected), (404, Rejected),
])
def test_error_statuses_map_to_the_error_tree(status: int, error: type[Exception], store: GcsBlobStore,
                                              fake_gcs: FakeGcs) -> None:
    fake_gcs.fail_next.append(status)
    with pytest.raises(error):
        store.put_once("invoices/A1.pdf", b"x", "application/pdf")
    if status == 404:
        return  # a 404 on download means "no such object": get() answers None, tested above
    fake_gcs.fail_next.append(status)
    with pytest.raises(error):
        store.get("invoices/A1.pdf")


def test_rejection_says_what_to_check(store: GcsBlobStore, fake_gcs: FakeGcs) -> None:
    fake_gcs.fail_next.append(403)
    with pytest.raises(Rejected, match="bucket exists and the handler's service account may create objects"):
        store.put_once("invoices/A1.pdf", b"x", "application/pdf")


def test_closed_port_is_retryable() -> None:
    client = FakeGcs(endpoint=f"http://127.0.0.1:{free_port()}").client()   # nothing listens there
    store = GcsBlobStore(client, "invoices-test", retry=None, timeout=1)
    with pytest.raises(DependencyUnavailable, match="unavailable"):
        store.put_once("invoices/A1.pdf", b"x", "application/pdf")
    with pytest.raises(DependencyUnavailable):
        store.get("invoices/A1.pdf")


def test_a_short_client_retry_rides_out_one_503(fake_gcs: FakeGcs) -> None:
    quick = Retry(predicate=lambda exc: True, initial=0.01, maximum=0.05, timeout=5)
    store = GcsBlobStore(fake_gcs.client(), "invoices-test", retry=quick, timeout=2)
    fake_gcs.fail_next.append(503)
    assert store.put_once("invoices/A1.pdf", b"x", "application/pdf") is True
