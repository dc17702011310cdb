"""Every owed effect is accounted for on the Firestore emulator, whatever fails (issue 27).

The fault runs of ``test_owed_effects.py`` beyond the handler outage (which
``test_owed_effects_firestore.py`` covers), with the stores on the Firestore emulator and
the real Cloud Tasks emulator dispatching (the rig: ``firestore_rig.py``): the store refusing
every write for longer than the retry span; a cancel racing the dispatch of every kind; two
auditors at once while deliveries go on; the handler killed with SIGKILL again and again
under load. Each run counts every effect where it lands (SMTP messages, invoice files,
analytics facts and their daily aggregate, warehouse notifications), prints one summary line
(``report``) and checks that no owed effect is lost and none happened twice (an email's
documented send/mark window aside: counted and printed as "email resends").

The catalogs are ``test_owed_effects.py``'s: retries that end within a second and a retry
span of about half a minute per queue, so Cloud Tasks drops a task whatever the handler
answered, exactly as Google's does, and the auditor may look half a minute later.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from ordertasks.handlers.registry import KindRegistry
from ordertasks.producer.reconcile import ReconcileSummary
from tests.reliability.firestore_rig import FirestoreRig, audit_until_accounted, firestore_rig, refusing_writes
from tests.reliability.stack import Ledger
from tests.reliability.test_owed_effects import assert_accounted, dropping_catalog, report
from tests.support.samples import fast_catalog
from tests.support.servers import wait_until

pytestmark = pytest.mark.firestore
ORDERS = 4              # per outage: each owes one effect per catalog kind
RACE_ORDERS = 40        # cancel race: half cancelled once scheduled, half once dispatched
RACE_RATE = 5           # dispatches per second per queue: each queue's first tasks go at once, later ones wait
KILLS = 6               # kill -9 loop: kills, each after a batch of orders
KILL_BATCH = 3


@pytest.fixture
def rig_with(tmp_path: Path, firestore_emulator: str) -> Iterator[Callable[..., FirestoreRig]]:
    """``rig_with(catalog, delay_scale=…)``: a Firestore rig over ``catalog``, stopped after the test."""
    with ExitStack() as stack:
        yield lambda catalog, **kw: stack.enter_context(firestore_rig(tmp_path, catalog, **kw))


# --- steps -------------------------------------------------------------------------------


def outage_hits(rig: FirestoreRig, order_ids: list[str], name: str) -> Ledger:
    """Wait until Cloud Tasks gave up on every task of the outage; check that reconcile alone
    (what it did before the ledger) leaves effects with neither an effect nor a record."""
    wait_until(lambda: rig.held(order_ids) == 0, timeout=60, what="Cloud Tasks to drop every task of the outage")
    rig.library.reconcile(grace_seconds=0, audit=False)
    before = rig.ledger(order_ids)
    report(f"firestore, {name}, before the auditor", before)
    assert before.lost, "the fault should leave owed effects with neither an effect nor a record"
    return before


def recovered(rig: FirestoreRig, order_ids: list[str], name: str, may_fail: bool = False) -> Ledger:
    """Once every owed effect is past its retry span, audit until all are accounted for; check it
    (``may_fail``: an effect may end in the failed-task log, once, instead of done)."""
    wait_until(lambda: rig.audit_due(order_ids), timeout=90, interval=1.0, what="the retry span")
    ledger = audit_until_accounted(rig, order_ids)
    report(f"firestore, {name}", ledger)
    assert_accounted(ledger, expect_failed=may_fail)
    assert_analytics_once(rig, order_ids)
    return ledger


def assert_analytics_once(rig: FirestoreRig, order_ids: list[str]) -> None:
    """The daily aggregate counts each analytics fact once (a second count has no fact to show it)."""
    facts, aggregated = rig.analytics_counts(order_ids)
    assert facts == aggregated, f"{facts} analytics facts, {aggregated} orders in the daily aggregates"


def audit_in_pairs(rig: FirestoreRig, order_ids: list[str], timeout: float = 60) -> list[ReconcileSummary]:
    """Run the auditor twice at once, and again, until every owed effect of these orders is accounted for."""
    runs: list[ReconcileSummary] = []

    def accounted() -> bool:
        if not rig.ledger(order_ids).lost:
            return True
        with ThreadPoolExecutor(max_workers=2) as pool:
            runs.extend(pool.map(lambda _: rig.library.reconcile(grace_seconds=0), range(2)))
        return False
    wait_until(accounted, timeout=timeout, interval=0.5, what="every owed effect accounted for")
    return runs


def cancel(rig: FirestoreRig, order_id: str) -> dict[tuple[str, str], str]:
    """Cancel the order; ``cancel``'s answer per (order, kind)."""
    return {(order_id, result.kind): result.state for result in rig.library.cancel(order_id)}


def place_and_cancel(rig: FirestoreRig, order_id: str) -> dict[tuple[str, str], str]:
    """Schedule one order and cancel it at once."""
    rig.place([order_id], workers=1)
    return cancel(rig, order_id)


def cancel_once_dispatched(rig: FirestoreRig, order_id: str) -> dict[tuple[str, str], str]:
    """Cancel the order as soon as a delivery claimed one of its kinds: the others are being dispatched."""
    wait_until(lambda: any(rig.store.effects.get_effect(order_id, k) for k in rig.library.kinds), timeout=60,
               interval=0.05, what=f"a delivery of {order_id}")
    return cancel(rig, order_id)


def reclaimed(rig: FirestoreRig, order_ids: list[str]) -> int:
    """Owed effects whose record counts more than one claim (a kill cut an attempt off)."""
    records = [rig.store.effects.get_effect(o, e.kind) for o in order_ids for e in rig.store.orders.outbox_for(o)]
    return sum(1 for record in records if record is not None and record.attempts > 1)


def deliveries_logged(log: Path) -> int:
    """Deliveries the handler process answered so far (one JSON line with an ``outcome`` each)."""
    return log.read_text(errors="replace").count('"outcome"') if log.exists() else 0


# --- the faults ----------------------------------------------------------------------------


def test_a_store_refusing_every_write_past_the_retry_span_loses_nothing_on_firestore(
        rig_with: Callable[..., FirestoreRig], tmp_path: Path) -> None:
    """Fault: every write of the handler to its stores (claim, done mark, failed record, attempt
    log, analytics fact) raises ``DependencyUnavailable`` until Cloud Tasks has dropped every
    task, i.e. past the retry span; then the store takes writes again and the auditor runs."""
    rig = rig_with(dropping_catalog(tmp_path))
    outage = threading.Event()
    outage.set()
    stores, refused = refusing_writes(rig.store, outage)
    server = rig.start_handler(stores)
    try:
        order_ids = rig.place([f"ord_fs_nowrite_{n}" for n in range(ORDERS)])
        before = outage_hits(rig, order_ids, "store refusing writes")
        assert len(before.lost) == len(before.owed) == rig.kinds_per_order * ORDERS and not before.effects
        assert refused["claim_effect"] >= len(before.owed), f"every task should have met the outage: {refused}"
        print(f"writes refused during the outage: {dict(refused)}")
        outage.clear()                                      # the store is back
        ledger = recovered(rig, order_ids, "store refusing writes")
    finally:
        server.shutdown()
    assert ledger.done == ledger.owed


def test_cancel_racing_dispatch_of_every_kind_is_never_contradicted_on_firestore(
        rig_with: Callable[..., FirestoreRig], tmp_path: Path) -> None:
    """Fault: a cancel racing the dispatch of every kind, create-once kinds included, all due at
    once (delay scale 0): half the orders are cancelled the moment they are scheduled, the
    other half the moment a delivery claimed one of their kinds, while the others are being
    dispatched. An effect whose cancel answered ``cancelled`` must never reach its far end."""
    rig = rig_with(fast_catalog(tmp_path, rate=RACE_RATE), delay_scale=0)
    create_once = {name for name, kind in KindRegistry.from_catalog(rig.library.catalog).items() if kind.create_once}
    assert create_once, "the catalog under test has no create-once kind: the race would not cover one"
    at_once, on_dispatch = ([f"ord_fs_race_{how}_{n}" for n in range(RACE_ORDERS // 2)] for how in ("now", "disp"))
    answers: dict[tuple[str, str], str] = {}
    server = rig.start_handler()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            placed = pool.submit(rig.place, on_dispatch)
            cancels = [pool.submit(place_and_cancel, rig, o) for o in at_once]
            placed.result()
            cancels += [pool.submit(cancel_once_dispatched, rig, o) for o in on_dispatch]
            for done in cancels:
                answers.update(done.result())
        wait_until(lambda: rig.held(at_once + on_dispatch) == 0, timeout=60, what="every task finished")
        ledger = rig.ledger(at_once + on_dispatch)
    finally:
        server.shutdown()
    contradicted = {key for key, state in answers.items() if state == "cancelled" and ledger.effects[key]}
    counts = Counter(map(str, answers.values()))
    once = Counter(str(state) for (_, kind), state in answers.items() if kind in create_once)
    raced = Counter(str(state) for (order_id, _), state in answers.items() if order_id in on_dispatch)
    cancelled_kinds = {kind for (_, kind), state in answers.items() if state == "cancelled"}
    print(f"\nfirestore cancel race: answers {dict(counts)} (create-once kinds {dict(once)}; cancelled once "
          f"dispatched {dict(raced)}), effects after a 'cancelled' answer {len(contradicted)}")
    report("firestore, cancel race", ledger)
    assert len(answers) == RACE_ORDERS * rig.kinds_per_order
    assert contradicted == set(), sorted(contradicted)
    assert all(ledger.effects[key] == 1 for key, state in answers.items() if state == "done")
    assert cancelled_kinds == set(rig.library.kinds), f"never 'cancelled': {set(rig.library.kinds) - cancelled_kinds}"
    assert_accounted(ledger)
    assert_analytics_once(rig, at_once + on_dispatch)


def test_two_auditors_at_once_during_deliveries_record_each_effect_once_on_firestore(
        rig_with: Callable[..., FirestoreRig], tmp_path: Path) -> None:
    """Fault: the handler is down past the retry span for one batch of orders, whose catalog
    allows no re-creation (each owed effect must end in the failed-task log: ``TaskVanished``);
    then the auditor runs twice at once, again and again, while a second batch's tasks are
    being delivered. No effect twice, no effect with two failed records or a two-entry history."""
    rig = rig_with(dropping_catalog(tmp_path, recreations=0))
    dropped = rig.place([f"ord_fs_vanish_{n}" for n in range(ORDERS)])
    before = outage_hits(rig, dropped, "handler down, no re-creation")
    assert len(before.lost) == len(before.owed) == rig.kinds_per_order * ORDERS
    server = rig.start_handler()
    try:
        wait_until(lambda: rig.audit_due(dropped, within=3.0), timeout=90, interval=0.5, what="the retry span")
        live = rig.place([f"ord_fs_live_{n}" for n in range(ORDERS)])
        wait_until(lambda: rig.audit_due(dropped), timeout=10, interval=0.2, what="the retry span")
        held_then = rig.held(live)
        runs = audit_in_pairs(rig, dropped)
        wait_until(lambda: not rig.ledger(live).lost, timeout=60, interval=1.0, what="the live batch done")
    finally:
        server.shutdown()
    ledger, records = rig.ledger(dropped + live), rig.failed_records(dropped + live)
    vanished = sum(r.audit.vanished for r in runs if r.audit)
    per_run = [r.audit.vanished if r.audit else 0 for r in runs]
    print(f"\nfirestore, two auditors at once: {len(runs)} runs with {held_then} tasks of the live batch in "
          f"Cloud Tasks, {vanished} recorded as failed (per run {per_run}), "
          f"records per effect {dict(Counter(map(len, records.values())))}")
    report("firestore, two auditors at once", ledger)
    assert held_then > 0, "the live batch's deliveries should still be going when the auditors run"
    assert vanished == len(before.owed) and set(records) == before.owed, (vanished, sorted(records))
    assert all(lengths == [1] for lengths in records.values()), records
    assert_accounted(ledger, expect_failed=True)
    assert ledger.done == ledger.owed - before.owed and not ledger.effects.keys() & before.owed
    assert_analytics_once(rig, dropped + live)


def test_handler_killed_again_and_again_under_load_loses_nothing_on_firestore(
        rig_with: Callable[..., FirestoreRig], tmp_path: Path) -> None:
    """Fault: the handler, a process of its own over the Firestore stores, is killed with
    SIGKILL as soon as it has answered a delivery after each restart, ``KILLS`` times while
    orders come in (kills land between a claim and its done mark); then it stays up and the
    auditor runs. A killed claim stays leased; an attempt that meets it may end in the
    failed-task log (``LeaseHeld``): accounted for, once."""
    rig = rig_with(dropping_catalog(tmp_path))
    log = tmp_path / "handler.log"
    handler = rig.handler_process(log).start(timeout=60)
    order_ids: list[str] = []
    try:
        for round_ in range(KILLS):
            answered = deliveries_logged(log)
            order_ids += rig.place([f"ord_fs_kill_{round_}_{n}" for n in range(KILL_BATCH)])
            wait_until(lambda: deliveries_logged(log) > answered, timeout=30, interval=0.05,
                       what="the restarted handler to answer a delivery")
            handler.kill9()
            handler = rig.handler_process(log).start(timeout=60)
        wait_until(lambda: rig.held(order_ids) == 0, timeout=90, what="every task finished")
        rig.library.reconcile(grace_seconds=0, audit=False)
        report("firestore, kill -9 loop, before the auditor", rig.ledger(order_ids))
        recovered(rig, order_ids, "kill -9 loop", may_fail=True)
        print(f"effects claimed more than once (an attempt cut off by a kill): {reclaimed(rig, order_ids)}")
    finally:
        handler.stop()
