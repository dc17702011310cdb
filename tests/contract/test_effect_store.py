"""EffectStore contract: atomic claims with a lease, done → duplicate, release, TTL."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any

import pytest

from ordertasks.handlers.ports import Claim, ClaimState, EffectStore, Stores
from tests.contract.clock import T0, at
from tests.contract.concurrency import all_at_once

LEASE, TTL = 60.0, 3600.0


@pytest.fixture
def store(stores: Stores) -> EffectStore:
    """The EffectStore of each backend."""
    return stores.effects


def claim(store: Any, seconds: float = 0, lease: float = LEASE, ttl: float = TTL, kind: str = "send_confirmation_email") -> Claim:
    return store.claim_effect("o-1", kind, at(seconds), lease, ttl)


def test_store_implements_the_port(store: Any) -> None:
    assert isinstance(store, EffectStore)


def test_first_claim_creates_an_in_progress_record(store: Any) -> None:
    result = claim(store)
    assert result.state is ClaimState.CLAIMED
    record = store.get_effect("o-1", "send_confirmation_email")
    assert record == result.record
    assert (record.state, record.attempts, record.key) == ("in_progress", 1, "o-1:send_confirmation_email")
    assert (record.lease_expires_at, record.first_attempt_at, record.expire_at) == (at(LEASE), T0, at(TTL))
    assert record.first_attempt_at.tzinfo is not None


def test_twenty_concurrent_claims_have_exactly_one_winner(store: Any) -> None:
    results = all_at_once(lambda _: claim(store))
    states = Counter(result.state for result in results)
    assert states == {ClaimState.CLAIMED: 1, ClaimState.LEASED: 19}
    assert store.get_effect("o-1", "send_confirmation_email").attempts == 1


def test_live_lease_is_leased_and_expired_lease_is_reclaimed(store: Any) -> None:
    claim(store)
    assert claim(store, seconds=LEASE - 1).state is ClaimState.LEASED
    again = claim(store, seconds=LEASE + 1)
    assert again.state is ClaimState.CLAIMED
    assert (again.record.attempts, again.record.first_attempt_at) == (2, T0)
    assert again.record.lease_expires_at == at(2 * LEASE + 1)
    assert store.get_effect("o-1", "send_confirmation_email") == again.record


def test_twenty_concurrent_reclaims_of_an_expired_lease_have_one_winner(store: Any) -> None:
    claim(store)
    results = all_at_once(lambda _: claim(store, seconds=LEASE + 5))
    assert Counter(result.state for result in results) == {ClaimState.CLAIMED: 1, ClaimState.LEASED: 19}
    assert store.get_effect("o-1", "send_confirmation_email").attempts == 2


def test_completed_effect_answers_done_with_its_result(store: Any) -> None:
    claim(store)
    store.complete_effect("o-1", "send_confirmation_email", {"message_id": "<m@x>", "n": 2}, at(5))
    later = claim(store, seconds=LEASE * 10)
    assert later.state is ClaimState.DONE
    assert later.record.result == {"message_id": "<m@x>", "n": 2}
    assert (later.record.state, later.record.attempts, later.record.updated_at) == ("done", 1, at(5))


def test_release_allows_an_immediate_reclaim(store: Any) -> None:
    claim(store)
    store.release_effect("o-1", "send_confirmation_email", at(1))
    again = claim(store, seconds=2)
    assert again.state is ClaimState.CLAIMED
    assert (again.record.attempts, again.record.first_attempt_at) == (2, T0)


def test_release_leaves_a_done_record_untouched(store: Any) -> None:
    claim(store)
    store.complete_effect("o-1", "send_confirmation_email", {}, at(1))
    before = store.get_effect("o-1", "send_confirmation_email")
    store.release_effect("o-1", "send_confirmation_email", at(2))
    assert store.get_effect("o-1", "send_confirmation_email") == before
    assert claim(store, seconds=3).state is ClaimState.DONE


def test_record_past_its_expire_at_counts_as_absent(store: Any) -> None:
    claim(store, lease=10, ttl=30)
    store.complete_effect("o-1", "send_confirmation_email", {"sent": True}, at(5))
    fresh = claim(store, seconds=31)
    assert fresh.state is ClaimState.CLAIMED
    assert (fresh.record.attempts, fresh.record.first_attempt_at, fresh.record.result) == (1, at(31), {})


def test_keys_are_independent_and_unknown_is_none(store: Any) -> None:
    claim(store)
    assert claim(store, kind="generate_invoice").state is ClaimState.CLAIMED
    assert store.get_effect("o-2", "send_confirmation_email") is None
    store.release_effect("o-2", "send_confirmation_email", T0)     # nothing to release: no error
    assert store.get_effect("o-2", "send_confirmation_email") is None


def test_duplicates_are_counted_and_effects_tallied(store: Any) -> None:
    """Each DONE answer counts one absorbed delivery; effect_counts tallies per kind and state."""
    now = datetime(2024, 3, 2, 9, 0, tzinfo=timezone.utc)
    store.claim_effect("ord-d1", "notify_warehouse", now, 60, 86400)
    store.complete_effect("ord-d1", "notify_warehouse", {"ok": True}, now)
    store.claim_effect("ord-d2", "notify_warehouse", now, 60, 86400)
    for _ in range(3):
        assert store.claim_effect("ord-d1", "notify_warehouse", now, 60, 86400).state is ClaimState.DONE
    assert store.get_effect("ord-d1", "notify_warehouse").duplicates == 3
    counts = store.effect_counts()["notify_warehouse"]
    assert (counts["done"], counts["in_progress"], counts["duplicates"]) == (1, 1, 3)


# --- cancellation ------------------------------------------------------------------------------

KIND = "send_confirmation_email"


def cancel(store: Any, seconds: float = 0) -> ClaimState:
    state: ClaimState = store.cancel_effect("o-1", KIND, at(seconds), TTL)
    return state


def test_cancel_before_any_claim_stops_every_later_claim(store: Any) -> None:
    assert cancel(store) is ClaimState.CANCELLED
    assert claim(store, 1).state is ClaimState.CANCELLED
    assert store.get_effect("o-1", KIND).state == "cancelled"
    assert cancel(store, 2) is ClaimState.CANCELLED                      # twice: same answer


def test_cancel_of_a_done_effect_says_done_and_changes_nothing(store: Any) -> None:
    claim(store)
    store.complete_effect("o-1", KIND, {"ok": True}, at(1))
    assert cancel(store, 2) is ClaimState.DONE
    assert store.get_effect("o-1", KIND).state == "done"


def test_cancel_during_a_live_lease_says_in_flight_and_after_it_lapses_cancels(store: Any) -> None:
    claim(store)
    assert cancel(store, 1) is ClaimState.LEASED
    assert cancel(store, LEASE + 1) is ClaimState.CANCELLED
    assert claim(store, LEASE + 2).state is ClaimState.CANCELLED


def test_concurrent_claims_and_a_cancel_never_both_win(store: Any) -> None:
    def race(index: int) -> Any:
        return cancel(store) if index == 0 else claim(store).state
    results = all_at_once(race)
    cancelled_first = results[0] is ClaimState.CANCELLED
    claimed = sum(1 for r in results[1:] if r is ClaimState.CLAIMED)
    assert claimed == (0 if cancelled_first else 1), results
    assert results[0] in (ClaimState.CANCELLED, ClaimState.LEASED)
