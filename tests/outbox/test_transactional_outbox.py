"""``schedule(order, transaction=…)`` and the relay, over PostgreSQL and SQLite, through a
SQLAlchemy ``Connection``, a SQLAlchemy ``Session`` and the raw driver connection, against the
real Cloud Tasks emulator: rolled back, nothing ever happens; committed, the relay schedules
every kind once; committed then killed, ``ordertasks relay`` finishes it; four relays at once
share 500 orders without creating a task twice.

Counts come from the catalog (``tasks.kinds``), never written down here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ordertasks.producer.library import OrderNotFound, OrderTasks
from tests.outbox.conftest import APIS, ShopDatabase, environment, order, shop_database, task_names
from tests.producer.conftest import Emulator

RELAY = [sys.executable, "-m", "ordertasks.cli", "relay"]
SUMMARY = re.compile(r"relay: (\d+) order\(s\) relayed \((\d+) task\(s\) created, (\d+) already there, "
                     r"(\d+) pending for reconcile, (\d+) cancelled\), (\d+) refused")


@pytest.mark.parametrize("api", APIS)
def test_a_rolled_back_schedule_leaves_nothing_anywhere(tasks: OrderTasks, shop: ShopDatabase, api: str) -> None:
    with shop.transaction(api, commit=False) as transaction:
        results = tasks.schedule(order("ord_rolled_back"), transaction=transaction)
        assert [(r.kind, r.state) for r in results] == [(kind, "pending") for kind in tasks.kinds]
    assert tasks.relay().relayed == 0
    assert task_names(tasks) == []
    with pytest.raises(OrderNotFound):
        tasks.status("ord_rolled_back")
    assert shop.counts().waiting == shop.counts().relayed == 0


@pytest.mark.parametrize("api", APIS)
def test_a_committed_schedule_is_relayed_once(tasks: OrderTasks, shop: ShopDatabase, api: str) -> None:
    with shop.transaction(api) as transaction:
        pending = tasks.schedule(order("ord_committed"), transaction=transaction, payment_id="pi_123")
    assert task_names(tasks) == [], "nothing reaches Cloud Tasks before the relay"
    with pytest.raises(OrderNotFound):
        tasks.status("ord_committed")
    summary = tasks.relay()
    assert (summary.relayed, summary.created, summary.exists, summary.refused) == (1, len(tasks.kinds), 0, 0)
    assert sorted(task_names(tasks)) == sorted(r.name for r in pending)
    assert tasks.relay().relayed == 0, "a relayed row is never relayed again"
    status = tasks.status("ord_committed")
    assert status["status"] == "paid" and [t["state"] for t in status["tasks"]] == ["scheduled"] * len(tasks.kinds)
    assert tasks.stores.orders.get_order("ord_committed").charge_id == "pi_123"     # type: ignore[union-attr]
    assert (shop.counts().waiting, shop.counts().relayed) == (0, 1)


@pytest.mark.parametrize("api", APIS)
def test_scheduling_the_same_order_twice_in_the_outbox_is_harmless(tasks: OrderTasks, shop: ShopDatabase,
                                                                   api: str) -> None:
    for _ in range(2):
        with shop.transaction(api) as transaction:
            tasks.schedule(order("ord_twice"), transaction=transaction)
    assert tasks.relay().created == len(tasks.kinds)
    assert len(task_names(tasks)) == len(tasks.kinds)


def test_an_order_already_scheduled_with_other_content_is_refused_not_retried(tasks: OrderTasks,
                                                                              shop: ShopDatabase) -> None:
    tasks.schedule(order("ord_reused"))
    other = {**order("ord_reused"), "placed_at": "2026-01-01T00:00:00+00:00"}
    with shop.transaction("driver") as transaction:
        tasks.schedule(other, transaction=transaction)
    assert tasks.relay().refused == 1
    assert tasks.relay().refused == 0 and shop.counts().refused == 1


def relay_cli(tmp_path: Path, emulator: Emulator, shop: ShopDatabase, *args: str) -> subprocess.Popen[str]:
    """``ordertasks relay --database-url URL`` in a process of its own."""
    return subprocess.Popen([*RELAY, "--database-url", shop.url, *args], env=environment(tmp_path, emulator, shop),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def summary_of(process: subprocess.Popen[str], timeout: float) -> tuple[int, ...]:
    """The relay's summary line, as numbers: relayed, created, exists, pending, cancelled, refused."""
    out, err = process.communicate(timeout=timeout)
    found = SUMMARY.search(out)
    assert process.returncode == 0 and found, f"exit {process.returncode}\n{out}\n{err[-3000:]}"
    return tuple(int(n) for n in found.groups())


COMMIT_THEN_DIE = """
import os, signal, sys
from ordertasks import OrderTasks
from tests.outbox.conftest import ShopDatabase, order
shop = ShopDatabase(sys.argv[1], sys.argv[2])
tasks = OrderTasks.from_env()
conn = shop.driver_connection()
tasks.schedule(order("ord_killed"), transaction=conn)
conn.commit()
os.kill(os.getpid(), signal.SIGKILL)     # committed, and gone before any relay
"""


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_a_process_killed_between_commit_and_relay_is_finished_by_ordertasks_relay(
        tmp_path: Path, emulator: Emulator, request: pytest.FixtureRequest, dialect: str) -> None:
    shop = shop_database(dialect, tmp_path, request)
    killed = subprocess.run([sys.executable, "-c", COMMIT_THEN_DIE, shop.dialect, shop.url], timeout=60,
                            env=environment(tmp_path, emulator, shop), cwd=Path(__file__).resolve().parents[2],
                            capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert shop.counts().waiting == 1
    relayed, created, exists, pending, _, refused = summary_of(relay_cli(tmp_path, emulator, shop), timeout=60)
    with OrderTasks.from_settings(_settings(tmp_path, emulator, shop)) as tasks:
        assert (relayed, created, exists, pending, refused) == (1, len(tasks.kinds), 0, 0, 0)
        names = task_names(tasks)
        assert len(names) == len(set(names)) == len(tasks.kinds)
        assert {t["state"] for t in tasks.status("ord_killed")["tasks"]} == {"scheduled"}


ORDERS = 500
RELAYS = 4


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_four_relays_at_once_create_every_task_of_500_orders_once(
        tmp_path: Path, emulator: Emulator, request: pytest.FixtureRequest, dialect: str) -> None:
    shop = shop_database(dialect, tmp_path, request)
    with OrderTasks.from_settings(_settings(tmp_path, emulator, shop)) as tasks:
        conn = shop.driver_connection()
        try:
            for n in range(ORDERS):
                tasks.schedule(order(f"ord_many_{n}"), transaction=conn)
                conn.commit()
        finally:
            conn.close()
        kinds = len(tasks.kinds)
        relays = [relay_cli(tmp_path, emulator, shop, "--limit", str(ORDERS)) for _ in range(RELAYS)]
        summaries = [summary_of(relay, timeout=300) for relay in relays]
        relayed, created, exists, pending, _, refused = (sum(column) for column in zip(*summaries))
        assert (relayed, created, exists, pending, refused) == (ORDERS, ORDERS * kinds, 0, 0, 0), summaries
        names = Counter(task_names(tasks))
        assert len(names) == ORDERS * kinds and set(names.values()) == {1}
    counts = shop.counts()
    assert (counts.waiting, counts.relayed, counts.refused) == (0, ORDERS, 0)


def _settings(tmp_path: Path, emulator: Emulator, shop: ShopDatabase):  # type: ignore[no-untyped-def]
    from tests.producer.conftest import make_settings

    return make_settings(tmp_path, emulator.host, store={"outbox_url": shop.url})
