"""EffectStore contract, the failed-attempt fields: ``release_effect`` with an ``AttemptFailure``
records attempt N of M, the readable error and the next attempt's time in its one write, as
``retrying`` or (final) ``failed``; claims, completion, cancellation and the counts treat
those states as the port says, on every backend."""

from __future__ import annotations

from typing import Any

import pytest

from ordertasks.handlers.ports import AttemptFailure, ClaimState, EffectStore, Stores
from tests.contract.clock import T0, at

LEASE, TTL = 60.0, 3600.0
KIND = "notify_warehouse"
ERROR = "warehouse http://127.0.0.1:8090/notifications answered 503: warehouse down"


@pytest.fixture
def store(stores: Stores) -> EffectStore:
    """The EffectStore of each backend."""
    return stores.effects


def claim(store: Any, seconds: float = 0) -> Any:
    return store.claim_effect("o-1", KIND, at(seconds), LEASE, TTL)


def failure(attempt: int, next_in: float | None, error: str = ERROR, limit: int | None = 3) -> AttemptFailure:
    return AttemptFailure(attempt, limit, error, None if next_in is None else at(attempt + next_in), ttl_seconds=TTL)


def test_a_retryable_failure_is_retrying_with_attempt_error_and_next_time(store: Any) -> None:
    claim(store)
    store.release_effect("o-1", KIND, at(1), failure(1, 10))
    record = store.get_effect("o-1", KIND)
    assert (record.state, record.attempt, record.max_attempts) == ("retrying", 1, 3)
    assert (record.last_error, record.next_attempt_at) == (ERROR, at(11))
    assert (record.lease_expires_at, record.updated_at, record.attempts, record.first_attempt_at) == (None, at(1), 1, T0)
    assert record.next_attempt_at.tzinfo is not None


def test_the_next_claim_takes_a_retrying_record_and_keeps_the_last_failure(store: Any) -> None:
    claim(store)
    store.release_effect("o-1", KIND, at(1), failure(1, 10))
    again = claim(store, seconds=11)
    assert again.state is ClaimState.CLAIMED
    assert (again.record.state, again.record.attempts, again.record.attempt) == ("in_progress", 2, 1)
    assert again.record.last_error == ERROR
    assert store.get_effect("o-1", KIND) == again.record


def test_the_final_failure_is_failed_without_a_next_attempt(store: Any) -> None:
    for attempt in (1, 2, 3):
        claim(store, seconds=attempt * 20)
        store.release_effect("o-1", KIND, at(attempt * 20 + 1), failure(attempt, None if attempt == 3 else 10))
    record = store.get_effect("o-1", KIND)
    assert (record.state, record.attempt, record.max_attempts, record.next_attempt_at) == ("failed", 3, 3, None)
    assert record.attempts == 3


def test_a_failed_record_can_be_claimed_again_by_a_replay(store: Any) -> None:
    claim(store)
    store.release_effect("o-1", KIND, at(1), failure(1, None))
    replay = claim(store, seconds=100)
    assert (replay.state, replay.record.state) == (ClaimState.CLAIMED, "in_progress")
    store.complete_effect("o-1", KIND, {"status": 201}, at(101))
    assert store.get_effect("o-1", KIND).state == "done"


def test_a_failure_before_any_claim_creates_the_record(store: Any) -> None:
    store.release_effect("o-1", KIND, at(1), failure(1, None, error="order has no shipping_address", limit=None))
    record = store.get_effect("o-1", KIND)
    assert (record.state, record.attempts, record.attempt, record.max_attempts) == ("failed", 0, 1, None)
    assert (record.last_error, record.expire_at) == ("order has no shipping_address", at(1 + TTL))
    assert claim(store, seconds=2).state is ClaimState.CLAIMED


def test_done_and_cancelled_records_ignore_a_failure(store: Any) -> None:
    claim(store)
    store.complete_effect("o-1", KIND, {"status": 201}, at(1))
    store.release_effect("o-1", KIND, at(2), failure(1, 10))
    assert store.get_effect("o-1", KIND).state == "done"
    store.cancel_effect("o-2", KIND, at(0), TTL)
    store.release_effect("o-2", KIND, at(2), failure(1, 10))
    assert store.get_effect("o-2", KIND).state == "cancelled"


def test_a_retrying_or_failed_effect_can_be_cancelled(store: Any) -> None:
    claim(store)
    store.release_effect("o-1", KIND, at(1), failure(1, 10))
    assert store.cancel_effect("o-1", KIND, at(2), TTL) is ClaimState.CANCELLED
    assert store.get_effect("o-1", KIND).state == "cancelled"


def test_release_without_a_failure_only_gives_the_lease_back(store: Any) -> None:
    claim(store)
    store.release_effect("o-1", KIND, at(1))
    record = store.get_effect("o-1", KIND)
    assert (record.state, record.lease_expires_at, record.attempt, record.last_error) == ("in_progress", None, 0, None)


def test_counts_by_state_see_retrying_and_failed_apart_from_in_progress(store: Any) -> None:
    for n, next_in in enumerate((10, None, 10)):
        store.claim_effect(f"o-{n}", KIND, at(0), LEASE, TTL)
        store.release_effect(f"o-{n}", KIND, at(1), failure(1, next_in))
    store.claim_effect("o-running", KIND, at(0), LEASE, TTL)
    counts = {state: store.count_effects(KIND, state) for state in ("in_progress", "retrying", "failed", "done")}
    assert counts == {"in_progress": 1, "retrying": 2, "failed": 1, "done": 0}
    assert store.effect_counts()[KIND] == {"done": 0, "in_progress": 1, "retrying": 2, "failed": 1, "duplicates": 0}


def test_an_unlimited_queue_stores_no_maximum(store: Any) -> None:
    claim(store)
    store.release_effect("o-1", KIND, at(1), failure(7, 300, limit=None))
    record = store.get_effect("o-1", KIND)
    assert (record.attempt, record.max_attempts, record.next_attempt_at) == (7, None, at(307))
