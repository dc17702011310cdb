"""The auditor over the real Cloud Tasks emulator, on SQLite and on the Firestore emulator.

Cloud Tasks dropping a task is what the emulator does when its retries run out; here the
queues are paused and the test deletes the tasks, which leaves Cloud Tasks in the same state
(``GetTask`` answers NOT_FOUND) without waiting for retries. The auditor's clock is a test
clock moved past each effect's ``audit_at``; the full-stack fault runs, with real outages
and real waiting, are in ``tests/reliability/test_owed_effects.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
import pytest

from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.handlers.ports import EffectState, FailureReport, Settled, Stores
from ordertasks.producer.audit import Auditor, AuditSummary
from ordertasks.producer.enqueue import Enqueuer, queue_path
from ordertasks.producer.library import OrderTasks
from ordertasks.producer.reconcile import main as reconcile_main
from ordertasks.producer.triage import triage_for
from ordertasks.producer.wiring import tasks_client
from tests.contract.concurrency import all_at_once
from tests.effects.orders import FixedClock, eur_order
from tests.producer.conftest import Emulator, make_settings, pause_all

BACKENDS = ["sqlite", pytest.param("firestore", marks=pytest.mark.firestore)]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    running = Emulator(tmp_path_factory.mktemp("audit-emulator")).start()
    try:
        yield running
    finally:
        running.stop()


def backend_stores(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Stores:
    if backend == "sqlite":
        return SqliteStore(tmp_path / "orders.db")
    from ordertasks.handlers.backends.firestore import FirestoreStore
    from tests.contract.conftest import firestore_client_for, sanitized_project_id

    request.getfixturevalue("firestore_emulator")
    return FirestoreStore(firestore_client_for(sanitized_project_id()), timeout=20.0)


@pytest.fixture(params=BACKENDS)
def tasks(request: pytest.FixtureRequest, tmp_path: Path, emulator: Emulator) -> Iterator[OrderTasks]:
    settings = make_settings(tmp_path, emulator.host)
    client = tasks_client(settings)
    enqueuer = Enqueuer(client, settings)
    pause_all(client, enqueuer.catalog)          # nothing is dispatched: the test decides what vanishes
    library = OrderTasks(settings, backend_stores(request.param, tmp_path, request), enqueuer,
                         clock=FixedClock(), owned=[enqueuer, client.transport])
    try:
        yield library
    finally:
        library.close()


def place(tasks: OrderTasks, name: str) -> str:
    """Schedule a paid order; its id is ``name`` plus a random part (the emulator is shared)."""
    order_id = f"{name}_{uuid.uuid4().hex[:8]}"
    tasks.schedule({"order_id": order_id, **eur_order().model_dump(mode="json")})
    return order_id


def live_names(tasks: OrderTasks, order_id: str) -> list[str]:
    """The names of ``order_id``'s tasks that Cloud Tasks (the emulator) holds."""
    cat, client = tasks.catalog, tasks.enqueuer.client
    return sorted(t.name for q in cat.queues for t in client.list_tasks(parent=queue_path(cat.project, cat.region, q))
                  if f"-{order_id}-" in t.name)


def drop_all(tasks: OrderTasks, order_id: str) -> list[str]:
    """Cloud Tasks gives up on every task of the order (as it does after its retries)."""
    names = live_names(tasks, order_id)
    for name in names:
        tasks.enqueuer.client.delete_task(name=name)
    return names


def past_every_audit(tasks: OrderTasks, order_id: str) -> None:
    """Move the auditor's clock just past the latest ``audit_at`` of the order's unsettled effects."""
    due = [e.audit_at for e in tasks.stores.orders.outbox_for(order_id) if e.audit_at and e.settled is None]
    assert due, "nothing left to audit"
    clock = tasks.clock
    assert isinstance(clock, FixedClock)
    clock.current = max(clock.current, max(due)) + timedelta(seconds=1)


def audit(tasks: OrderTasks) -> AuditSummary:
    return tasks.auditor().run()


def test_every_owed_effect_is_audited_only_after_its_queues_whole_retry_span(tasks: OrderTasks) -> None:
    oid = place(tasks, "x")
    for entry in tasks.stores.orders.outbox_for(oid):
        span = tasks.catalog.queue_for(entry.kind).retry_span_seconds(
            tasks.catalog.kinds[entry.kind].dispatch_deadline_seconds)
        assert entry.audit_at == entry.schedule_time + timedelta(seconds=span + tasks.catalog.auditor.margin_seconds)
    drop_all(tasks, oid)
    first_due = min(e.audit_at for e in tasks.stores.orders.outbox_for(oid) if e.audit_at)
    assert isinstance(tasks.clock, FixedClock)
    tasks.clock.current = first_due - timedelta(seconds=1)
    assert audit(tasks).looked == 0, "nothing is looked at before its retry span is over"


def test_a_vanished_effect_is_recreated_then_recorded_as_failed_once(tasks: OrderTasks) -> None:
    oid = place(tasks, "x")
    kinds, limit = tasks.kinds, tasks.catalog.auditor.recreations
    for number in range(1, limit + 1):
        drop_all(tasks, oid)
        past_every_audit(tasks, oid)
        summary = audit(tasks)
        assert (summary.looked, summary.recreated, summary.vanished) == (len(kinds), len(kinds), 0), summary
        assert all(name.endswith(f"-a{number}") for name in live_names(tasks, oid))
        assert audit(tasks).looked == 0, "a re-created effect is looked at again only after its retry span"
    drop_all(tasks, oid)
    past_every_audit(tasks, oid)
    summary = audit(tasks)
    assert (summary.recreated, summary.vanished) == (0, len(kinds)), summary
    failed = tasks.stores.failed.list_failed(limit=100)
    assert sorted(f.kind for f in failed) == sorted(kinds)
    for record in failed:
        assert (record.error_type, record.status, len(record.history)) == ("TaskVanished", "open", 1)
        assert "before the handler answered" in record.error and record.task_name.endswith(f"-a{limit}")
    assert {e.settled for e in tasks.stores.orders.outbox_for(oid)} == {Settled.FAILED}
    assert {t["state"] for t in tasks.status(oid)["tasks"]} == {"failed"}
    tasks.clock.current += timedelta(days=40)                             # type: ignore[attr-defined]
    assert audit(tasks).looked == 0, "a settled effect is never looked at again"


def test_a_task_vanished_record_can_be_replayed(tasks: OrderTasks) -> None:
    oid = place(tasks, "x")
    for _ in range(tasks.catalog.auditor.recreations + 1):
        drop_all(tasks, oid)
        past_every_audit(tasks, oid)
        audit(tasks)
    kind = tasks.kinds[0]
    result = triage_for(tasks.stores.failed, tasks.enqueuer).replay(f"{oid}:{kind}")
    assert result.status == "created" and result.task_name.endswith("-r1"), result
    assert result.task_name in live_names(tasks, oid)


def test_settled_effects_are_recorded_and_live_tasks_left_alone(tasks: OrderTasks) -> None:
    oid = place(tasks, "x")
    done, failed, cancelled, alive, leased = tasks.kinds[:5]
    now = tasks.clock.now()
    tasks.effects.complete_effect(oid, done, {"ok": True}, now)
    tasks.stores.failed.record_failure(FailureReport(oid, failed, "q", "t", {}, "Rejected", "no", 1, now))
    tasks.cancel(oid, kinds=[cancelled])
    tasks.effects.claim_effect(oid, leased, now, 10**7, 86400.0)     # a delivery that runs long
    gone = [n for n in live_names(tasks, oid) if not n.endswith(f"-{alive}")]
    for name in gone:
        tasks.enqueuer.client.delete_task(name=name)
    past_every_audit(tasks, oid)
    summary = audit(tasks)
    assert summary.states == {"done": 1, "failed": 1, "cancelled": 1}, summary
    others = len(tasks.kinds) - 5
    assert (summary.live, summary.recreated) == (2, others), summary
    ledger = {e.kind: e for e in tasks.stores.orders.outbox_for(oid)}
    assert (ledger[done].settled, ledger[failed].settled, ledger[cancelled].settled) == ("done", "failed", "cancelled")
    assert ledger[alive].settled is None and ledger[alive].audits == 0 and ledger[alive].audit_at > now
    assert ledger[leased].settled is None and ledger[leased].audits == 0


def test_a_cancelled_order_settles_cancelled_without_recreating(tasks: OrderTasks) -> None:
    oid = place(tasks, "x")
    tasks.cancel(oid)
    past_every_audit(tasks, oid)
    summary = audit(tasks)
    assert summary.states == {"cancelled": len(tasks.kinds)} and summary.recreated == 0, summary
    assert live_names(tasks, oid) == []


def test_auditors_running_at_once_recreate_once_and_record_one_failure(tasks: OrderTasks) -> None:
    oid = place(tasks, "x")
    kinds, runners = tasks.kinds, 4
    for _ in range(tasks.catalog.auditor.recreations):
        drop_all(tasks, oid)
        past_every_audit(tasks, oid)
        summaries = all_at_once(lambda _: audit(tasks), threads=runners)
        assert sum(s.recreated for s in summaries) == len(kinds), summaries
        assert len(live_names(tasks, oid)) == len(kinds)
    drop_all(tasks, oid)
    past_every_audit(tasks, oid)
    summaries = all_at_once(lambda _: audit(tasks), threads=runners)
    assert sum(s.vanished for s in summaries) == len(kinds), summaries
    records = tasks.stores.failed.list_failed(limit=100)
    assert len(records) == len(kinds) and {len(r.history) for r in records} == {1}


def test_an_effect_done_by_a_recreated_task_settles_done(tasks: OrderTasks) -> None:
    oid = place(tasks, "x")
    drop_all(tasks, oid)
    past_every_audit(tasks, oid)
    assert audit(tasks).recreated == len(tasks.kinds)
    for name in drop_all(tasks, oid):           # the handler is back: each task delivered once
        kind = next(k for k in tasks.kinds if f"-{k}-a1" in name)
        claim = tasks.effects.claim_effect(oid, kind, tasks.clock.now(), 60.0, 86400.0)
        tasks.effects.complete_effect(oid, kind, {}, tasks.clock.now())
        assert claim.record.attempts == 1
    past_every_audit(tasks, oid)
    assert audit(tasks).states == {"done": len(tasks.kinds)}
    effects = [tasks.effects.get_effect(oid, k) for k in tasks.kinds]
    assert all(e is not None and e.state == EffectState.DONE for e in effects)


def test_the_reconcile_command_prints_what_the_auditor_did(tmp_path: Path, emulator: Emulator,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings(tmp_path, emulator.host)
    with OrderTasks.from_settings(settings) as library:
        # The order was placed in 2024 (``eur_order``): every retry span is long over.
        oid = place(library, "cli")
        drop_all(library, oid)
    assert reconcile_main(["--grace-seconds", "0"], settings=settings) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("reconcile: 0 pending task(s)")
    assert any(line.startswith("  auditor: Cloud Tasks dropped") and line.endswith("(1 of 3)") for line in out), out
    kinds = len(settings.catalog().kinds)
    assert out[-1].startswith(f"audit: {kinds} owed effect(s) past their retry span: 0 settled (none), 0 still in "
                              f"Cloud Tasks, {kinds} re-created, 0 recorded as failed"), out[-1]
    assert reconcile_main(["--grace-seconds", "0", "--no-audit"], settings=settings) == 0
    assert not any(line.startswith("audit:") for line in capsys.readouterr().out.splitlines())



def test_a_run_pages_through_every_due_effect_up_to_its_limit(tasks: OrderTasks) -> None:
    orders = [place(tasks, "page") for _ in range(3)]
    for order_id in orders:
        for kind in tasks.kinds:
            tasks.effects.complete_effect(order_id, kind, {}, tasks.clock.now())
        past_every_audit(tasks, order_id)
    owed = len(orders) * len(tasks.kinds)
    auditor = Auditor(tasks.stores.orders, tasks.effects, tasks.stores.failed, tasks.enqueuer, tasks.clock, page=4)
    first = auditor.run(limit=owed - 2)
    assert (first.looked, first.states) == (owed - 2, {"done": owed - 2}), first
    rest = auditor.run(limit=owed)
    assert (rest.looked, rest.states) == (2, {"done": 2}), rest
    assert auditor.run().looked == 0
