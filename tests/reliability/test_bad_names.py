"""Case 6: hostile order ids never become a document path, a file path or a task name.

At checkout they are a 400 naming the field. If one reaches the handler in a task body
anyway it is rejected on arrival, and its failed-task record gets a safe id. The invoice
store refuses any path that would leave its directory.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from ordertasks.handlers.backends.localdir import LocalDirBlobStore
from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.handlers.contract import encode
from ordertasks.handlers.kinds.generate_invoice import invoice_path
from tests.reliability.stack import LocalStack
from tests.reliability.test_fuzz_handler import SAFE_FAILED_ID
from tests.support.samples import CHECKOUT_BODY

HOSTILE_IDS = ["a/b", "../../etc/passwd", "..", "ord_ü", "ord_\u202e", "x" * 1024, "__x__", "__name__",
               "ord id", "ord\x00", "ord%2F..", "ord.pdf", "", "-leading-dash"]


def _task_with_order_id(kind: str, order_id: str) -> bytes:
    body = encode(kind, "ord_placeholder")
    return body.replace(b'"ord_placeholder"', json.dumps(order_id).encode())


def test_checkout_refuses_hostile_order_ids_with_400(local_stack: LocalStack) -> None:
    for order_id in HOSTILE_IDS:
        body: dict[str, Any] = copy.deepcopy(CHECKOUT_BODY) | {"order_id": order_id}
        resp = local_stack.checkout(body)
        assert resp.status_code == 400, (order_id, resp.status_code, resp.text[:200])
        assert any(f["field"] == "order_id" for f in resp.json()["error"]["fields"]), resp.text
    with local_stack.store() as store:
        assert store.orders.pending_outbox(datetime.max.replace(tzinfo=timezone.utc)) == []
    assert not (local_stack.data_dir / "blobs").exists() or list((local_stack.data_dir / "blobs").rglob("*")) == []


@pytest.mark.parametrize("order_id", HOSTILE_IDS)
def test_handler_rejects_hostile_ids_into_a_safely_named_failed_record(rig_for: Any, tmp_path: Path,
                                                                       order_id: str) -> None:
    rig = rig_for(SqliteStore(tmp_path / "store.db"))
    resp = rig.deliver(_task_with_order_id("generate_invoice", order_id), "generate_invoice")
    assert resp.status_code == 200 and resp.json()["outcome"] == "dead", resp.text
    [record] = rig.store.failed.list_failed()
    assert SAFE_FAILED_ID.match(record.id) and record.error_type == "InvalidPayload", record.id
    assert not rig.blob_dir.exists() or list(rig.blob_dir.rglob("*")) == []
    assert list(tmp_path.rglob("*.pdf")) == [], "no invoice anywhere for a rejected id"


@pytest.mark.parametrize("path", ["../escape.pdf", "/etc/escape.pdf", "invoices/../../escape.pdf",
                                  "invoices/./../../escape.pdf"])
def test_invoice_store_refuses_paths_that_leave_its_directory(tmp_path: Path, path: str) -> None:
    blobs = LocalDirBlobStore(tmp_path / "blobs")
    with pytest.raises(ValueError):
        blobs.put_once(path, b"%PDF-1.4", "application/pdf")
    assert not (tmp_path / "escape.pdf").exists()


def test_invoice_path_of_every_valid_id_stays_inside(tmp_path: Path) -> None:
    assert invoice_path("ord_abc-1") == "invoices/ord_abc-1.pdf"
    for order_id in HOSTILE_IDS:
        with pytest.raises(ValueError):
            invoice_path(order_id)
