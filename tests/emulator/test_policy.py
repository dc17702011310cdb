"""The retry policy and token bucket as pure functions, with a fake clock."""

from __future__ import annotations

import pytest

from ordertasks.infra.emulator.dispatcher import TokenBucket, retry_after_seconds
from ordertasks.infra.emulator.model import RetryConfig
from ordertasks.infra.emulator.wire import format_duration, format_timestamp, parse_duration, parse_timestamp


def test_backoff_matches_the_documented_example() -> None:
    retry = RetryConfig(min_backoff=10, max_backoff=300, max_doublings=3)

    assert [retry.backoff(k) for k in range(8)] == [10, 20, 40, 80, 160, 240, 300, 300]


@pytest.mark.parametrize("attempts, elapsed, max_attempts, max_duration, exhausted", [
    (4, 0, 5, 0, False),
    (5, 0, 5, 0, True),
    (5, 10, 5, 60, False),   # attempts used up, duration not: keep trying
    (9, 61, 5, 60, True),
    (1000, 10**6, -1, 0, False),  # unlimited attempts
])
def test_retrying_stops_when_both_limits_are_used(attempts, elapsed, max_attempts, max_duration, exhausted) -> None:  # type: ignore[no-untyped-def]
    retry = RetryConfig(max_attempts=max_attempts, max_retry_duration=max_duration)

    assert retry.exhausted(attempts, first_attempt_at=1000.0, now=1000.0 + elapsed) is exhausted


def test_token_bucket_allows_burst_then_paces() -> None:
    bucket = TokenBucket(rate=20, burst=2, now=0.0)

    for _ in range(2):
        assert bucket.wait_time(0.0) == 0.0
        bucket.take()

    assert bucket.wait_time(0.0) == pytest.approx(0.05)
    assert bucket.wait_time(0.05) == pytest.approx(0.0)


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after_seconds("7", now=0) == 7
    assert retry_after_seconds("Thu, 01 Jan 1970 00:00:30 GMT", now=10) == pytest.approx(20)
    assert retry_after_seconds("soon", now=0) is None


def test_wire_durations_and_timestamps_round_trip() -> None:
    assert parse_duration("0.100s", "f") == pytest.approx(0.1)
    assert format_duration(0.1) == "0.100s" and format_duration(600) == "600s"
    assert parse_timestamp("2030-01-02T03:04:05.5+01:00", "f") == pytest.approx(parse_timestamp("2030-01-02T02:04:05.5Z", "f"))
    assert format_timestamp(parse_timestamp("2030-01-02T03:04:05Z", "f")) == "2030-01-02T03:04:05Z"
