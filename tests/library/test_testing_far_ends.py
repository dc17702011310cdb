"""The memory far ends of ``ordertasks.testing``: the invoice bucket honours the ``BlobStore``
contract (the same tests as the local directory and GCS, ``tests/contract/test_blob_store.py``);
the mailer and webhook targets keep what they were given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

from ordertasks.testing import ManualClock, MemoryBlobStore, MemoryMailer, MemoryWebhook, WebhookCall
from tests.contract.test_blob_store import (test_binary_content_round_trips,  # noqa: F401 - run here too
                                            test_concurrent_writers_have_exactly_one_winner,
                                            test_first_write_creates, test_missing_object_reads_as_none,
                                            test_paths_are_independent,
                                            test_second_write_is_already_written_and_keeps_the_first)

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def blobs() -> MemoryBlobStore:
    """The contract's fixture, for the memory bucket."""
    return MemoryBlobStore(ManualClock(T0))


def test_created_at_and_count_follow_the_clock() -> None:
    clock = ManualClock(T0)
    store = MemoryBlobStore(clock)
    store.put_once("invoices/a.pdf", b"a", "application/pdf")
    clock.advance(60)
    store.put_once("invoices/b.pdf", b"b", "application/pdf")
    store.put_once("receipts/c.txt", b"c", "text/plain")
    assert store.created_at("invoices/a.pdf") == T0 and store.created_at("invoices/x.pdf") is None
    assert (store.count("invoices/"), store.count("invoices/", T0 + timedelta(seconds=60))) == (2, 1)
    assert store.paths("invoices/") == ["invoices/a.pdf", "invoices/b.pdf"]
    assert store.content_type("receipts/c.txt") == "text/plain"


def test_the_mailer_keeps_every_message_in_order() -> None:
    mailer, first, second = MemoryMailer(), EmailMessage(), EmailMessage()
    mailer.send(first)
    mailer.send(second)
    assert mailer.sent == [first, second]


def test_webhook_targets_record_calls_and_answer_200_by_default() -> None:
    calls: list[WebhookCall] = []
    target = MemoryWebhook("sync_crm", calls)
    assert target.post("ord_1:sync_crm", {"order_id": "ord_1"}) == {"status": 200, "reference": None}
    assert calls == [WebhookCall("sync_crm", "ord_1:sync_crm", {"order_id": "ord_1"})]
