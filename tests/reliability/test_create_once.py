"""Create-once kinds: the claim on every attempt, the far end's precondition as the crash guard.

A kind that declares ``create_once`` (the invoice: an exclusive create; the analytics fact:
one transaction guarded by the fact's ``create()``) takes the claim like every kind, so a
cancel is never contradicted (a delivery that read the order before the cancel holds the
claim, and the cancel answers ``in_flight``). The far end's precondition still turns a retry
after a crash between the effect and its done mark into a duplicate. With ``done_at`` the far
end's record is read back by every status view (``handlers.effect_records``), which covers
effects recorded before create-once kinds claimed. The kinds under test are the catalog's
kinds that declare it, never a list of names.
"""

from __future__ import annotations

from collections import Counter
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ordertasks.handlers.backends.memory import MemoryStore
from ordertasks.handlers.contract import OrderSnapshot, Task
from ordertasks.handlers.dispatch import Delivery, Dispatcher, Outcome
from ordertasks.handlers.errors import ConfigurationError, DependencyUnavailable
from ordertasks.handlers.kind import EffectContext, Kind
from ordertasks.handlers.registry import KindRegistry
from ordertasks.handlers.wiring import Stores, build_dispatcher, recorded_effects
from ordertasks.infra.config import Settings, load_catalog
from ordertasks.handlers.settings import StoreSettings
from tests.effects.orders import FixedClock, eur_order
from tests.reliability.handler_rig import Rig, make_store, task_body
from tests.reliability.test_duplicate_delivery import deliver_until_settled
from tests.support.orders import store_paid_order
from tests.support.stores import done_mark_fails_once

COPIES = 50
BACKENDS = ["sqlite", pytest.param("firestore", marks=pytest.mark.firestore)]
REGISTRY = KindRegistry.from_catalog(load_catalog())
CREATE_ONCE = [name for name, declared in REGISTRY.items() if declared.create_once]


def local_settings(tmp_path: Path) -> Settings:
    """Local settings whose state lives in ``tmp_path``."""
    return Settings(store=StoreSettings(data_dir=tmp_path))


def test_the_catalog_has_create_once_kinds_to_test() -> None:
    assert CREATE_ONCE, "no catalog kind declares create_once: the cases below would test nothing"
    assert all(REGISTRY[name].done_at is not None for name in CREATE_ONCE)


def far_end_perform(rig: Rig, tmp_path: Path, kind: str, order_id: str) -> dict[str, Any]:
    """Run ``kind``'s effect against the rig's far ends, as a handler that then died would have."""
    dispatcher = build_dispatcher(local_settings(tmp_path), stores=rig.store)
    declared = dispatcher.kinds[kind]
    snapshot = OrderSnapshot.model_validate(eur_order().model_dump(mode="json"))
    return declared.perform(declared.task_for(order_id, snapshot, {}), dispatcher.ctx)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", CREATE_ONCE)
def test_fifty_concurrent_first_deliveries_give_one_effect_and_forty_nine_duplicates(
        rig_for: Any, tmp_path: Path, request: pytest.FixtureRequest, backend: str, kind: str) -> None:
    rig = rig_for(make_store(backend, tmp_path, request))
    order_id = f"ord_once_{kind[:8]}"
    rig.place(order_id)
    with ThreadPoolExecutor(max_workers=COPIES) as pool:
        answers = list(pool.map(lambda _: rig.deliver(task_body(kind, order_id), kind), range(COPIES)))
    outcomes = Counter((a.status_code, a.json().get("outcome")) for a in answers)
    assert set(outcomes) <= {(200, "done"), (200, "duplicate"), (503, "retry")}, outcomes
    # Copies that met the live claim answer 503 (LeaseHeld): Cloud Tasks redelivers them.
    settled = [deliver_until_settled(rig, kind, order_id) for _ in range(outcomes[(503, "retry")])]
    assert outcomes[(200, "done")] + settled.count("done") == 1, (outcomes, settled)
    assert outcomes[(200, "duplicate")] + settled.count("duplicate") == COPIES - 1, (outcomes, settled)
    counts = rig.effects(order_id)
    assert counts[kind] == 1 and sum(counts.values()) == 1, counts
    view = recorded_effects(local_settings(tmp_path), rig.store).get_effect(order_id, kind)
    # Counting duplicates is best effort (a lost increment only lowers a statistic).
    assert view is not None and view.state == "done" and 1 <= view.duplicates <= COPIES - 1, view
    assert view.attempts == 1, "one claim ran the effect; the others found it held or done"
    assert rig.store.failed.list_failed() == []


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", CREATE_ONCE)
def test_a_retry_after_a_crash_that_followed_the_effect_answers_duplicate_without_a_second_effect(
        rig_for: Any, tmp_path: Path, request: pytest.FixtureRequest, backend: str, kind: str) -> None:
    rig = rig_for(make_store(backend, tmp_path, request))
    order_id = f"ord_crash_{kind[:8]}"
    rig.place(order_id)
    assert far_end_perform(rig, tmp_path, kind, order_id)["created"] is True   # the attempt that died
    resp = rig.deliver(task_body(kind, order_id), kind, retry_count=1)          # Cloud Tasks retries it
    assert resp.status_code == 200 and resp.json()["outcome"] == "duplicate", resp.text
    assert rig.effects(order_id)[kind] == 1
    record = rig.store.effects.get_effect(order_id, kind)
    assert record is not None and record.state == "done", record
    again = rig.deliver(task_body(kind, order_id), kind, retry_count=2)
    assert again.json()["outcome"] == "duplicate" and rig.effects(order_id)[kind] == 1


# --- the protocol, in-process over the memory store ---------------------------------------


def dispatcher_for(tmp_path: Path, store: Stores, clock: FixedClock,
                   kinds: KindRegistry | None = None) -> Dispatcher:
    return build_dispatcher(local_settings(tmp_path), stores=store, clock=clock, kinds=kinds)


def registry_with(kind: str, declared: Kind) -> KindRegistry:
    return KindRegistry({**REGISTRY, kind: declared.named(kind)}, REGISTRY.webhooks)


@pytest.mark.parametrize("kind", CREATE_ONCE)
def test_a_first_delivery_claims_and_marks_done_and_a_later_cancel_answers_done(tmp_path: Path, kind: str) -> None:
    store, clock = MemoryStore(), FixedClock()
    store_paid_order(store, "ord_once_view", eur_order())
    assert dispatcher_for(tmp_path, store, clock).run(Delivery(task_body(kind, "ord_once_view"))).outcome is Outcome.DONE
    record = store.effects.get_effect("ord_once_view", kind)
    assert record is not None and record.state == "done" and record.attempts == 1
    view = recorded_effects(local_settings(tmp_path), store)
    assert view.count_effects(kind, "done") == 1 and view.count_effects(kind) == 1
    assert view.cancel_effect("ord_once_view", kind, clock.now(), 3600.0).value == "done"


@pytest.mark.parametrize("kind", CREATE_ONCE)
def test_an_effect_recorded_only_at_its_far_end_reads_as_done(rig_for: Any, tmp_path: Path,
                                                              request: pytest.FixtureRequest, kind: str) -> None:
    rig = rig_for(make_store("sqlite", tmp_path, request))
    rig.place("ord_once_far")
    far_end_perform(rig, tmp_path, kind, "ord_once_far")     # as a first attempt without a claim once did
    assert rig.store.effects.get_effect("ord_once_far", kind) is None
    view = recorded_effects(local_settings(tmp_path), rig.store)
    found = view.get_effect("ord_once_far", kind)
    assert found is not None and found.state == "done"
    assert view.cancel_effect("ord_once_far", kind, FixedClock().now(), 3600.0).value == "done"


@pytest.mark.parametrize("kind", CREATE_ONCE)
def test_a_cancel_while_a_delivery_is_between_its_read_and_its_create_answers_in_flight(
        tmp_path: Path, kind: str) -> None:
    store, clock = MemoryStore(), FixedClock()
    store_paid_order(store, "ord_once_race", eur_order())
    real, reached, go_on = REGISTRY[kind], threading.Event(), threading.Event()

    def slow(task: Task, ctx: EffectContext) -> dict[str, Any]:
        reached.set()                       # the order was read as paid; the far end not yet written
        assert go_on.wait(10)
        return real.perform(task, ctx)
    dispatcher = dispatcher_for(tmp_path, store, clock, registry_with(kind, replace(real, perform=slow)))
    with ThreadPoolExecutor(max_workers=1) as pool:
        delivery = pool.submit(dispatcher.run, Delivery(task_body(kind, "ord_once_race")))
        assert reached.wait(10)
        view = recorded_effects(local_settings(tmp_path), store)
        answer = view.cancel_effect("ord_once_race", kind, clock.now(), 3600.0)
        go_on.set()
        assert delivery.result().outcome is Outcome.DONE
    assert answer.value == "leased", "a cancel must not say cancelled for an effect about to happen"
    assert view.get_effect("ord_once_race", kind).state == "done"


@pytest.mark.parametrize("kind", CREATE_ONCE)
def test_a_failed_first_attempt_records_its_start_and_the_retry_takes_the_claim(tmp_path: Path, kind: str) -> None:
    store, clock, calls = MemoryStore(), FixedClock(), []
    store_paid_order(store, "ord_once_flaky", eur_order())
    real = REGISTRY[kind]

    def flaky(task: Task, ctx: EffectContext) -> dict[str, Any]:
        calls.append(task.kind)
        if len(calls) == 1:
            raise DependencyUnavailable("far end down")
        return real.perform(task, ctx)
    dispatcher = dispatcher_for(tmp_path, store, clock, registry_with(kind, replace(real, perform=flaky)))
    started = clock.now()
    assert dispatcher.run(Delivery(task_body(kind, "ord_once_flaky"))).outcome is Outcome.RETRY
    noted = store.effects.get_effect("ord_once_flaky", kind)
    assert noted is not None and noted.state == "retrying" and noted.first_attempt_at == started
    assert noted.lease_expires_at is None, "the lease was given back: the retry must not wait"
    clock.current += timedelta(seconds=10)
    assert dispatcher.run(Delivery(task_body(kind, "ord_once_flaky"), retry_count=1)).outcome is Outcome.DONE
    done = store.effects.get_effect("ord_once_flaky", kind)
    assert done is not None and done.state == "done" and done.attempts == 2 and done.first_attempt_at == started


@pytest.mark.parametrize("kind", CREATE_ONCE)
def test_a_cancel_recorded_before_the_delivery_stops_a_create_once_kind(tmp_path: Path, kind: str) -> None:
    store, clock = MemoryStore(), FixedClock()
    store_paid_order(store, "ord_once_cancel", eur_order())
    store.effects.cancel_effect("ord_once_cancel", kind, clock.now(), 3600.0)
    result = dispatcher_for(tmp_path, store, clock).run(Delivery(task_body(kind, "ord_once_cancel")))
    assert result.outcome is Outcome.CANCELLED
    view = recorded_effects(local_settings(tmp_path), store)
    found = view.get_effect("ord_once_cancel", kind)
    assert found is not None and found.state == "cancelled", "nothing happened at the far end"


def test_a_create_once_kind_without_a_far_end_record_gets_a_done_mark_and_a_lost_one_costs_no_second_effect(
        tmp_path: Path) -> None:
    kind, created = CREATE_ONCE[0], set()

    def create_once(task: Task, ctx: EffectContext) -> dict[str, Any]:
        fresh = task.order_id not in created
        created.add(task.order_id)
        return {"created": fresh}
    store, clock = done_mark_fails_once(), FixedClock()
    store_paid_order(store, "ord_once_mark", eur_order())
    dispatcher = dispatcher_for(tmp_path, store, clock, registry_with(kind, Kind(perform=create_once, create_once=True)))
    assert dispatcher.run(Delivery(task_body(kind, "ord_once_mark"))).outcome is Outcome.RETRY
    clock.current += timedelta(seconds=3600)            # the unmarked claim's lease lapses
    assert dispatcher.run(Delivery(task_body(kind, "ord_once_mark"), retry_count=1)).outcome is Outcome.DUPLICATE
    assert created == {"ord_once_mark"}
    record = store.effects.get_effect("ord_once_mark", kind)
    assert record is not None and record.state == "done"
    assert dispatcher.run(Delivery(task_body(kind, "ord_once_mark"))).outcome is Outcome.DUPLICATE


def test_done_at_without_create_once_is_refused_and_a_replaced_perform_takes_the_claim() -> None:
    declared = REGISTRY[CREATE_ONCE[0]]
    with pytest.raises(ConfigurationError, match="done_at needs create_once=True"):
        Kind(perform=declared.perform, done_at=declared.done_at)
    replaced = REGISTRY.with_effects({CREATE_ONCE[0]: lambda task, ctx: {}})[CREATE_ONCE[0]]
    assert not replaced.create_once and replaced.done_at is None
    assert not any(k.create_once for k in REGISTRY.with_claims().values())
