"""Case 2, store unavailable: the Firestore emulator stops mid-run, then comes back.

The handler runs in-process over ``FirestoreStore`` on a private emulator (stopping the
session's shared one would disturb other tests). The emulator keeps data in memory only, so
it is stopped with SIGSTOP and resumed with SIGCONT: to the handler that is a store that
does not answer, and nothing it held is gone when it is back. A small driver plays Cloud
Tasks: every task is delivered until it gets a 2xx, with a rising retry count.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ordertasks.handlers.wiring import build_dispatcher
from tests.support.orders import store_paid_order
from tests.support.stores import done_mark_fails_once
from ordertasks.handlers.dispatch import Delivery, Outcome
from ordertasks.infra.config import Settings
from ordertasks.handlers.settings import StoreSettings
from tests.conftest import _firestore_answers
from tests.effects.orders import PLACED_AT, FixedClock, eur_order
from tests.reliability.handler_rig import KINDS, Rig, task_body
from tests.support.samples import fast_catalog
from tests.support.servers import ServerProcess, free_port, need_binary, wait_until

ORDERS = 10


@pytest.fixture
def private_firestore(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    """A Firestore emulator of our own; yields the process and ``host:port``."""
    gcloud = need_binary("gcloud", "the Firestore emulator ships with the gcloud SDK")
    need_binary("java", "the Firestore emulator runs on Java")
    port = free_port()
    server = ServerProcess([gcloud, "emulators", "firestore", "start", f"--host-port=127.0.0.1:{port}"], port,
                           env=dict(os.environ), log_path=tmp_path / "firestore.log",
                           ready=lambda: _firestore_answers(port))
    server.start(timeout=90)
    try:
        yield server, f"127.0.0.1:{port}"
    finally:
        if server.proc and server.proc.poll() is None:
            os.killpg(server.proc.pid, signal.SIGCONT)
        server.stop()


def _store_on(host: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from ordertasks.handlers.backends.firestore import FirestoreStore
    from tests.contract.conftest import firestore_client_for, sanitized_project_id

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", host)
    # A short per-call timeout: an outage becomes a 503 in seconds, not after half a minute.
    return FirestoreStore(firestore_client_for(sanitized_project_id()), timeout=2.0)


class CloudTasksDriver:
    """Delivers each task until a 2xx, counting answers (a stand-in for the dispatcher)."""

    def __init__(self, rig: Rig, tasks: list[tuple[str, str]], after_ok: Callable[[int], None]) -> None:
        self.rig = rig
        self.after_ok = after_ok
        self.pending = {task: 0 for task in tasks}
        self.answers: Counter[int] = Counter()
        self.lock = threading.Lock()

    def _one(self, task: tuple[str, str]) -> None:
        order_id, kind = task
        with self.lock:
            retries = self.pending[task]
        resp = self.rig.deliver(task_body(kind, order_id), kind, retry_count=min(retries, 1))
        with self.lock:
            self.answers[resp.status_code] += 1
            if 200 <= resp.status_code < 300:
                del self.pending[task]
            else:
                self.pending[task] = retries + 1
            ok = self.answers[200]
        if 200 <= resp.status_code < 300:
            self.after_ok(ok)

    def round(self) -> int:
        """Deliver every pending task once, concurrently; return how many are still pending."""
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(self._one, list(self.pending)))
        return len(self.pending)


def test_store_outage_gives_503s_and_loses_nothing(rig_for: Any, private_firestore: tuple[ServerProcess, str],
                                                    monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server, host = private_firestore
    # A delivery cut off mid-effect cannot release its claim; a short lease frees it sooner.
    rig = rig_for(_store_on(host, monkeypatch), catalog_path=fast_catalog(tmp_path, lease_seconds=1))
    orders = [f"ord_outage_{i}" for i in range(ORDERS)]
    rig.place(*orders)
    stopped = threading.Event()

    def stop_store_halfway(ok: int) -> None:
        # Stop the store once half the tasks are done: the others are mid-claim or mid-effect.
        if ok >= len(orders) * len(KINDS) // 2 and not stopped.is_set():
            stopped.set()
            os.killpg(server.proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]

    driver = CloudTasksDriver(rig, [(o, k) for o in orders for k in KINDS], stop_store_halfway)
    driver.round()                                  # the store stops part-way through this round
    assert stopped.is_set()
    driver.round()                                  # the store is stopped for all of this one
    assert driver.answers[503] > 0, driver.answers
    assert set(driver.answers) <= {200, 503}, f"an outage must give 503s, nothing else: {driver.answers}"
    os.killpg(server.proc.pid, signal.SIGCONT)      # type: ignore[union-attr]
    wait_until(lambda: driver.round() == 0, timeout=120, interval=0.2, what="every task delivered")
    assert set(driver.answers) <= {200, 503}, driver.answers
    for order_id in orders:
        counts = rig.effects(order_id)
        assert counts["generate_invoice"] == 1, counts
        # An email whose done-mark met the outage is sent again on redelivery: the one resend
        # window the README design notes document. It carries the same Message-ID, so mailboxes fold it.
        ids = {m["Message-ID"] for m in rig.mail.messages if m["X-Ordertasks-Order"] == order_id}
        assert counts["send_confirmation_email"] >= 1 and len(ids) == 1, (counts, ids)
        for kind in KINDS:
            effect = rig.recorded().get_effect(order_id, kind)
            assert effect is not None and effect.state == "done", (order_id, kind, effect)
    assert rig.store.analytics.daily_aggregate(PLACED_AT.date()).orders == ORDERS
    assert rig.warehouse.state.requests >= ORDERS and len(rig.warehouse.state.notifications) == ORDERS
    assert rig.store.failed.list_failed() == []


def test_effect_whose_done_mark_fails_is_retried_not_reported_done(tmp_path: Path) -> None:
    clock, calls = FixedClock(), []
    store = done_mark_fails_once()
    store_paid_order(store, "ord_mark_1", eur_order())
    dispatcher = build_dispatcher(Settings(store=StoreSettings(data_dir=tmp_path)),
                                  stores=store, clock=clock,
                                  effects={"record_analytics": lambda task, ctx: calls.append(task) or {}})
    delivery = Delivery(task_body("record_analytics", "ord_mark_1"), queue_name="ordertasks-analytics")
    first = dispatcher.run(delivery)
    assert first.outcome is Outcome.RETRY, "a DONE the store does not know about would leave the task unaccounted"
    clock.current += timedelta(seconds=dispatcher._lease("record_analytics") + 1)
    second = dispatcher.run(Delivery(delivery.body, queue_name=delivery.queue_name, retry_count=1))
    assert second.outcome is Outcome.DONE and len(calls) == 2
    effect = store.effects.get_effect("ord_mark_1", "record_analytics")
    assert effect is not None and effect.state == "done"
