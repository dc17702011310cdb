"""AttemptLog contract: every delivery's outcome and duration, read back per order (one indexed
query) and per kind and minute (tallies of outcomes and a duration histogram), the same on
every backend."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ordertasks.handlers import attempt_stats
from ordertasks.handlers.ports import AttemptLog, AttemptRecord, MinuteTally, Stores
from tests.contract.clock import T0, at

WAREHOUSE, MAIL = "notify_warehouse", "send_confirmation"
MINUTE = attempt_stats.minute_of(T0)


@pytest.fixture
def store(stores: Stores) -> AttemptLog:
    """The AttemptLog of each backend."""
    return stores.attempts


def attempt(order_id: str, kind: str = WAREHOUSE, *, seconds: float = 0, ms: int = 120, outcome: str = "done",
            number: int = 1, answer: str = "HTTP 200 accepted") -> AttemptRecord:
    return AttemptRecord(order_id, kind, number, at(seconds), ms, outcome, answer, at(seconds + 86400),
                         task_name=f"projects/p/locations/l/queues/q/tasks/{order_id}-{kind}")


def by_key(tallies: list[MinuteTally]) -> dict[tuple[Any, str], MinuteTally]:
    return {(t.minute, t.kind): t for t in tallies}


def test_it_is_an_attempt_log(store: Any) -> None:
    assert isinstance(store, AttemptLog)


def test_an_orders_attempts_come_back_oldest_first_with_every_field(store: Any) -> None:
    failed = attempt("o-1", seconds=0, ms=2500, outcome="retry", answer="HTTP 503 warehouse down")
    done = attempt("o-1", seconds=90, ms=80, number=2)
    mail = attempt("o-1", MAIL, seconds=30, ms=40)
    for record in (done, failed, mail, attempt("o-2", seconds=10)):
        store.record_attempt(record)
    assert store.attempts_for("o-1") == [failed, mail, done]
    assert store.attempts_for("o-1")[0].finished_at == at(2.5)
    assert store.attempts_for("nobody") == []


def test_tallies_count_outcomes_per_kind_and_minute(store: Any) -> None:
    store.record_attempt(attempt("o-1", seconds=1))
    store.record_attempt(attempt("o-2", seconds=2, outcome="retry"))
    store.record_attempt(attempt("o-3", seconds=3, outcome="failed"))
    store.record_attempt(attempt("o-4", seconds=4, outcome="duplicate", ms=3))
    store.record_attempt(attempt("o-5", MAIL, seconds=5))
    store.record_attempt(attempt("o-6", seconds=65))                      # the next minute
    tallies = by_key(store.minute_tallies(MINUTE, MINUTE + timedelta(minutes=2)))
    assert set(tallies) == {(MINUTE, WAREHOUSE), (MINUTE, MAIL), (MINUTE + timedelta(minutes=1), WAREHOUSE)}
    first = tallies[(MINUTE, WAREHOUSE)]
    assert first.outcomes == {"done": 1, "retry": 1, "failed": 1, "duplicate": 1}
    # durations of the attempts that ran the effect; the duplicate stopped at the claim
    assert first.durations == {attempt_stats.duration_bucket(120): 3}
    assert tallies[(MINUTE, MAIL)].outcomes == {"done": 1}


def test_an_attempt_counts_in_the_minute_it_finished(store: Any) -> None:
    store.record_attempt(attempt("o-1", seconds=50, ms=15_000))        # started 12:00:50, answered 12:01:05
    tallies = store.minute_tallies(MINUTE, MINUTE + timedelta(minutes=5))
    assert [t.minute for t in tallies] == [MINUTE + timedelta(minutes=1)]


def test_only_the_minutes_asked_for_are_read(store: Any) -> None:
    for minutes in (0, 30, 59, 60, 61):
        store.record_attempt(attempt(f"o-{minutes}", seconds=minutes * 60))
    tallies = store.minute_tallies(MINUTE + timedelta(seconds=30), MINUTE + timedelta(minutes=60, seconds=10))
    assert [t.minute for t in tallies] == [MINUTE + timedelta(minutes=m) for m in (0, 30, 59)]
    assert store.minute_tallies(MINUTE + timedelta(hours=3), MINUTE + timedelta(hours=4)) == []


def test_many_orders_in_one_minute_sum_into_one_tally_with_its_percentiles(store: Any) -> None:
    durations = [10 * (i + 1) for i in range(20)]                    # 10 ms … 200 ms
    for i, ms in enumerate(durations):
        store.record_attempt(attempt(f"o-{i}", seconds=i, ms=ms, outcome="done" if i % 5 else "retry"))
    [tally] = store.minute_tallies(MINUTE, MINUTE + timedelta(minutes=1))
    assert tally.outcomes == {"done": 16, "retry": 4}
    assert sum(tally.durations.values()) == 20
    p50, p95 = attempt_stats.percentile(tally.durations, 0.5), attempt_stats.percentile(tally.durations, 0.95)
    assert p50 is not None and p95 is not None
    assert abs(p50 - 100) / 100 < 0.1 and abs(p95 - 190) / 190 < 0.1


def test_an_empty_log_has_nothing(store: Any) -> None:
    assert store.minute_tallies(T0 - timedelta(hours=1), T0) == []
    assert store.attempts_for("o-1") == []
