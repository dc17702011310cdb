"""The owed-effects rig on the Firestore emulator (issue 27), shared by its test modules.

The real Cloud Tasks emulator dispatches to a handler (``build_handler``) over stores on the
Firestore emulator; the library (``OrderTasks``) schedules, cancels and audits over the same
stores. Effects are counted where they land: SMTP messages (``MailSink``), invoice files,
analytics facts (and the daily aggregate they feed), warehouse notifications.

The handler runs in the test process on demand (``start_handler``), over the stores or over a
stand-in of the same ports (``WritesRefused``), or as a process of its own that a test can
``kill -9`` (``start_handler_process``, which runs this module: ``python -m
tests.reliability.firestore_rig``).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from ordertasks.functions.main import build_handler
from ordertasks.handlers.backends.firestore import FirestoreStore
from ordertasks.handlers.config import Settings, load_catalog
from ordertasks.handlers.contract import OrderSnapshot
from ordertasks.handlers.errors import DependencyUnavailable
from ordertasks.handlers.ports import Stores
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
from tests.reliability.stack import Ledger
from tests.support.servers import ServerProcess, free_port, http_ok, port_open, wait_until

# The reads of the store ports; every other call is a write (fail closed: an unlisted read is refused too).
READS = frozenset({
    "get_effect", "effect_counts", "count_effects", "duplicates_absorbed",          # EffectStore
    "attempts_for", "minute_tallies",                                                # AttemptLog
    "get_failed", "list_failed", "count_failed", "page_failed", "failed_error_types",  # FailedTaskStore
    "get_fact", "count_facts", "daily_aggregate",                                    # AnalyticsStore
    "get_order", "outbox_for", "pending_outbox", "due_audits", "orders_by_email", "recent_orders",  # OrderStore
})


class WritesRefused:
    """One store port whose writes raise ``DependencyUnavailable`` while ``outage`` is set, as a
    store that refuses every write (disk full, quota exhausted, read-only) does; reads pass."""

    def __init__(self, port: Any, outage: threading.Event, refused: Counter[str]) -> None:
        self._port, self._outage, self._refused = port, outage, refused

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._port, name)
        if name in READS or name.startswith("_") or not callable(found):
            return found

        def write(*args: Any, **kwargs: Any) -> Any:
            if self._outage.is_set():
                self._refused[name] += 1
                raise DependencyUnavailable(f"the store refuses every write ({name}): outage")
            return found(*args, **kwargs)
        return write


def refusing_writes(store: Stores, outage: threading.Event) -> tuple[Stores, Counter[str]]:
    """``store``'s ports, each refusing writes while ``outage`` is set; and the refusals by method."""
    refused: Counter[str] = Counter()
    ports = {name: WritesRefused(getattr(store, name), outage, refused)
             for name in ("effects", "failed", "analytics", "orders", "attempts")}
    return Stores(**ports), refused         # type: ignore[arg-type]  # each stands in for its port


@dataclass
class FirestoreRig:
    """Cloud Tasks emulator, Firestore stores, far ends, the library; the handler started on demand."""

    settings: Settings
    store: FirestoreStore
    library: OrderTasks
    mail: MailSink
    warehouse: WarehouseStandIn
    port: int
    project: str

    @property
    def kinds_per_order(self) -> int:
        """How many effects each order owes: one per kind of the catalog under test."""
        return len(self.library.kinds)

    def start_handler(self, stores: Stores | None = None) -> Any:
        """The handler in this process over ``stores`` (default: the rig's); ``.shutdown()`` stops it."""
        server, _ = serve_flask(build_handler(self.settings, stores=stores or self.store), self.port)
        return server

    def handler_process(self, log_path: Path) -> ServerProcess:
        """The handler as a process of its own over the same Firestore project (not started)."""
        argv = [sys.executable, "-m", "tests.reliability.firestore_rig", "--port", str(self.port),
                "--project", self.project]
        env = {**os.environ, **self.handler_env(), "PYTHONUNBUFFERED": "1"}    # each log line as it happens
        return ServerProcess(argv, self.port, env=env, log_path=log_path,
                             ready=lambda: port_open(self.port), cwd=Path(__file__).resolve().parents[2])

    def handler_env(self) -> dict[str, str]:
        """What ``Settings.from_env`` needs to rebuild this rig's settings in another process."""
        s = self.settings
        return {"ORDERTASKS_CONFIG": str(s.catalog_path), "ORDERTASKS_DATA_DIR": str(s.store.data_dir),
                "ORDERTASKS_HANDLER_URL": s.tasks.handler_url, "CLOUD_TASKS_EMULATOR_HOST": str(s.tasks.emulator_host),
                "ORDERTASKS_DELAY_SCALE": str(s.tasks.delay_scale), "ORDERTASKS_OIDC_VERIFY": "false",
                "ORDERTASKS_SMTP_PORT": str(s.smtp.port), **dict(s.environment)}

    def place(self, order_ids: list[str], workers: int = 4) -> list[str]:
        """Schedule each order (paid now, the sample EUR order) as a shop's checkout would."""
        placed_now = eur_order().model_copy(update={"placed_at": datetime.now(UTC)}).model_dump(mode="json")
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda o: self.library.schedule({"order_id": o, **placed_now}), order_ids))
        return order_ids

    def held(self, order_ids: list[str]) -> int:
        """How many tasks of these orders Cloud Tasks still holds."""
        cat, client = self.library.catalog, self.library.enqueuer.client
        names = [t.name for q in cat.queues for t in client.list_tasks(parent=queue_path(cat.project, cat.region, q))]
        return sum(1 for name in names if any(f"-{o}-" in name for o in order_ids))

    def audit_due(self, order_ids: list[str], within: float = 0.0) -> bool:
        """True once every owed effect of these orders is past its retry span (the auditor may
        look), or will be within ``within`` seconds."""
        due = [e.audit_at for o in order_ids for e in self.store.orders.outbox_for(o) if e.audit_at is not None]
        return not due or datetime.now(UTC) + timedelta(seconds=within) > max(due)

    def ledger(self, order_ids: list[str]) -> Ledger:
        """Per (order, kind): owed, done, cancelled, failed record, and the effects at the far ends."""
        ids, ledger = set(order_ids), Ledger()
        view = recorded_effects(self.settings, self.store)
        for order_id in ids:
            ledger.owed |= {(order_id, e.kind) for e in self.store.orders.outbox_for(order_id)}
        with ThreadPoolExecutor(max_workers=8) as pool:
            states = dict(zip(ledger.owed, pool.map(lambda key: view.get_effect(*key), ledger.owed)))
        ledger.done = {key for key, found in states.items() if found is not None and found.state == "done"}
        ledger.cancelled = {key for key, found in states.items() if found is not None and found.state == "cancelled"}
        records = self.failed_records(order_ids)
        ledger.failed = set(records)
        ledger.failed_history = {key: max(lengths) for key, lengths in records.items()}
        ledger.effects = self.far_end_effects(ids)
        return ledger

    def failed_records(self, order_ids: list[str]) -> dict[tuple[str, str], list[int]]:
        """Each (order, kind) in the failed-task log: the history length of each of its records."""
        records: dict[tuple[str, str], list[int]] = {}
        for failed in self.store.failed.list_failed(limit=10_000):
            if failed.order_id in order_ids:
                records.setdefault((failed.order_id, failed.kind), []).append(len(failed.history))
        return records

    def far_end_effects(self, ids: set[str]) -> Counter[tuple[str, str]]:
        """(order, kind) → times its effect was seen where it lands."""
        seen: Counter[tuple[str, str]] = Counter()
        for message in self.mail.messages:
            seen[(str(message["X-Ordertasks-Order"]), str(message["X-Ordertasks-Kind"]))] += 1
        for pdf in self.settings.store.blob_root.rglob("*.pdf"):
            seen[(pdf.stem, "generate_invoice")] += 1
        for order_id in ids:
            if self.store.analytics.get_fact(order_id) is not None:
                seen[(order_id, "record_analytics")] += 1
        for key in list(self.warehouse.state.notifications):
            order_id, _, kind = key.partition(":")
            seen[(order_id, kind)] += 1
        return Counter({key: n for key, n in seen.items() if key[0] in ids})

    def analytics_counts(self, order_ids: list[str]) -> tuple[int, int]:
        """(analytics facts of these orders, orders counted by the daily aggregates of their days):
        an analytics effect counted twice shows as an aggregate above the facts."""
        facts = [self.store.analytics.get_fact(o) for o in order_ids]
        orders = [self.store.orders.get_order(o) for o in order_ids]
        days: set[date] = {OrderSnapshot.model_validate(r.snapshot).placed_at.date() for r in orders if r is not None}
        return sum(f is not None for f in facts), sum(self.store.analytics.daily_aggregate(d).orders for d in days)


def audit_until_accounted(rig: FirestoreRig, order_ids: list[str], timeout: float = 60) -> Ledger:
    """Run the auditor (``reconcile``) until every owed effect of these orders is accounted for."""
    def accounted() -> Ledger | None:
        ledger = rig.ledger(order_ids)
        if not ledger.lost and len(ledger.owed) == rig.kinds_per_order * len(order_ids):
            return ledger
        rig.library.reconcile(grace_seconds=0)
        return None
    return wait_until(accounted, timeout=timeout, interval=1.0, what="every owed effect accounted for")


@contextmanager
def firestore_rig(tmp_path: Path, catalog: Path, delay_scale: float = 0.00001) -> Iterator[FirestoreRig]:
    """The rig over ``catalog``, in a fresh Firestore project (needs the ``firestore_emulator`` fixture)."""
    tasks_port, handler_port = free_port(), free_port()
    emulator = ServerProcess([sys.executable, "-m", "ordertasks.infra.emulator", "--port", str(tasks_port), "--db",
                              str(tmp_path / "tasks.db"), "--queues", str(catalog), "--quiet"], tasks_port,
                             log_path=tmp_path / "emulator.log", ready=lambda: http_ok(tasks_port)).start(timeout=30)
    mail, warehouse = MailSink(port=free_port()).start(), WarehouseStandIn(port=free_port()).start()
    settings = Settings(catalog_path=catalog, store=StoreSettings(data_dir=tmp_path),
                        tasks=TasksSettings(handler_url=f"http://127.0.0.1:{handler_port}/",
                                            emulator_host=f"127.0.0.1:{tasks_port}", delay_scale=delay_scale),
                        oidc=OidcSettings(verify=False), smtp=SmtpSettings(port=mail.controller.port),
                        environment={"ORDERTASKS_WAREHOUSE_URL": warehouse.url + "/notifications"})
    project = sanitized_project_id()
    store = FirestoreStore(firestore_client_for(project), timeout=20.0)
    client = tasks_client(settings)
    enqueuer = Enqueuer(client, settings, load_catalog(catalog))
    library = OrderTasks(settings, store, enqueuer, owned=[enqueuer, client.transport])
    try:
        yield FirestoreRig(settings, store, library, mail, warehouse, handler_port, project)
    finally:
        library.close()
        mail.stop()
        warehouse.stop()
        emulator.stop()


def serve_handler(argv: list[str] | None = None, serve: Callable[[Any, int], Any] = serve_flask) -> int:
    """``python -m tests.reliability.firestore_rig --port P --project X``: the handler of
    ``Settings.from_env()`` over the Firestore project ``X`` (``FIRESTORE_EMULATOR_HOST``), until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--project", required=True)
    args = parser.parse_args(argv)
    store = FirestoreStore(firestore_client_for(args.project), timeout=20.0)
    server, thread = serve(build_handler(Settings.from_env(), stores=store), args.port)
    thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(serve_handler())
