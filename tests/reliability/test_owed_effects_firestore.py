"""Every owed effect is accounted for on the Firestore emulator too (issue 27).

The same fault as ``test_owed_effects.py``'s first case, with the stores on the Firestore
emulator: the real Cloud Tasks emulator dispatches to a handler (``build_handler`` on a real
HTTP server) that is down for longer than the queues' whole retry span, so Cloud Tasks
deletes every task with no failed record; then the handler comes back and the auditor
(``OrderTasks.reconcile``, two at once for its first run) accounts for every owed effect.
Effects are counted where they land: SMTP messages, invoice files, analytics facts,
warehouse notifications.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ordertasks.functions.main import build_handler
from ordertasks.handlers.backends.firestore import FirestoreStore
from ordertasks.handlers.config import Settings, load_catalog
from ordertasks.handlers.settings import OidcSettings, SmtpSettings, StoreSettings, TasksSettings
from ordertasks.handlers.wiring import recorded_effects
from ordertasks.infra.mailsink import MailSink
from ordertasks.infra.warehouse_standin import WarehouseStandIn
from ordertasks.producer.enqueue import Enqueuer, queue_path
from ordertasks.producer.library import OrderTasks
from ordertasks.producer.wiring import tasks_client
from tests.contract.conftest import firestore_client_for, sanitized_project_id
from tests.effects.orders import eur_order
from tests.functions.conftest import serve_flask
from tests.reliability.test_owed_effects import dropping_catalog
from tests.support.servers import ServerProcess, free_port, http_ok, wait_until

pytestmark = pytest.mark.firestore
ORDERS = 4


@dataclass
class FirestoreRig:
    """Cloud Tasks emulator, Firestore stores, far ends, the library; the handler started on demand."""

    settings: Settings
    store: FirestoreStore
    library: OrderTasks
    mail: MailSink
    warehouse: WarehouseStandIn
    port: int

    def start_handler(self) -> Any:
        server, _ = serve_flask(build_handler(self.settings, stores=self.store), self.port)
        return server

    def held(self, order_ids: list[str]) -> int:
        cat, client = self.library.catalog, self.library.enqueuer.client
        names = [t.name for q in cat.queues for t in client.list_tasks(parent=queue_path(cat.project, cat.region, q))]
        return sum(1 for name in names if any(f"-{o}-" in name for o in order_ids))

    def ledger(self, order_ids: list[str]) -> tuple[set[tuple[str, str]], set[tuple[str, str]], Counter[tuple[str, str]]]:
        """(owed effects not accounted for, failed records, effects counted at the far ends)."""
        view = recorded_effects(self.settings, self.store)
        owed = {(o, e.kind) for o in order_ids for e in self.store.orders.outbox_for(o)}
        done = {(o, k) for o, k in owed if (found := view.get_effect(o, k)) is not None and found.state == "done"}
        failed = {(f.order_id, f.kind) for f in self.store.failed.list_failed(limit=1000) if f.order_id in order_ids}
        seen: Counter[tuple[str, str]] = Counter()
        for message in self.mail.messages:
            seen[(str(message["X-Ordertasks-Order"]), str(message["X-Ordertasks-Kind"]))] += 1
        for pdf in self.settings.store.blob_root.rglob("*.pdf"):
            seen[(pdf.stem, "generate_invoice")] += 1
        for order_id in order_ids:
            if self.store.analytics.get_fact(order_id) is not None:
                seen[(order_id, "record_analytics")] += 1
        for key in self.warehouse.state.notifications:
            order_id, _, kind = key.partition(":")
            seen[(order_id, kind)] += 1
        return owed - done - failed, failed, seen


@pytest.fixture
def rig(tmp_path: Path, firestore_emulator: str) -> Iterator[FirestoreRig]:
    catalog = dropping_catalog(tmp_path)
    tasks_port, handler_port = free_port(), free_port()
    emulator = ServerProcess([sys.executable, "-m", "ordertasks.infra.emulator", "--port", str(tasks_port), "--db",
                              str(tmp_path / "tasks.db"), "--queues", str(catalog), "--quiet"], tasks_port,
                             log_path=tmp_path / "emulator.log", ready=lambda: http_ok(tasks_port)).start(timeout=30)
    mail, warehouse = MailSink(port=free_port()).start(), WarehouseStandIn(port=free_port()).start()
    settings = Settings(catalog_path=catalog, store=StoreSettings(data_dir=tmp_path),
                        tasks=TasksSettings(handler_url=f"http://127.0.0.1:{handler_port}/",
                                            emulator_host=f"127.0.0.1:{tasks_port}", delay_scale=0.00001),
                        oidc=OidcSettings(verify=False), smtp=SmtpSettings(port=mail.controller.port),
                        environment={"ORDERTASKS_WAREHOUSE_URL": warehouse.url + "/notifications"})
    store = FirestoreStore(firestore_client_for(sanitized_project_id()), timeout=20.0)
    client = tasks_client(settings)
    enqueuer = Enqueuer(client, settings, load_catalog(catalog))
    library = OrderTasks(settings, store, enqueuer, owned=[enqueuer, client.transport])
    try:
        yield FirestoreRig(settings, store, library, mail, warehouse, handler_port)
    finally:
        library.close()
        mail.stop()
        warehouse.stop()
        emulator.stop()


def test_handler_down_past_the_retry_span_loses_nothing_on_firestore(rig: FirestoreRig) -> None:
    order_ids = [f"ord_fs_down_{n}" for n in range(ORDERS)]
    placed_now = eur_order().model_copy(update={"placed_at": datetime.now(UTC)}).model_dump(mode="json")
    for order_id in order_ids:
        rig.library.schedule({"order_id": order_id, **placed_now})
    wait_until(lambda: rig.held(order_ids) == 0, timeout=60, what="Cloud Tasks to drop every task of the outage")
    rig.library.reconcile(grace_seconds=0, audit=False)            # what reconcile did before the ledger
    lost, failed, seen = rig.ledger(order_ids)
    owed = len(order_ids) * len(rig.library.kinds)
    print(f"\nfirestore, before the auditor: owed {owed}, lost {len(lost)}, failed {len(failed)}, effects {sum(seen.values())}")
    assert len(lost) == owed and not failed and not seen
    server = rig.start_handler()
    try:
        due = max(e.audit_at for o in order_ids for e in rig.store.orders.outbox_for(o) if e.audit_at)
        wait_until(lambda: datetime.now(UTC) > due, timeout=90, interval=1.0, what="the retry span to pass")
        with ThreadPoolExecutor(max_workers=2) as pool:          # two auditors at once
            runs = list(pool.map(lambda _: rig.library.reconcile(grace_seconds=0), range(2)))
        assert sum(r.audit.recreated for r in runs if r.audit) == owed, runs

        def accounted() -> bool:
            if rig.ledger(order_ids)[0]:
                rig.library.reconcile(grace_seconds=0)
                return False
            return True
        wait_until(accounted, timeout=120, interval=2.0, what="every owed effect accounted for")
    finally:
        server.shutdown()                                           # type: ignore[attr-defined]
    lost, failed, seen = rig.ledger(order_ids)
    print(f"firestore, after the auditor: owed {owed}, lost {len(lost)}, failed {len(failed)}, "
          f"effects {sum(seen.values())}, duplicated {sum(1 for n in seen.values() if n > 1)}")
    assert lost == set() and failed == set()
    assert len(seen) == owed and set(seen.values()) == {1}, {k: n for k, n in seen.items() if n != 1}
