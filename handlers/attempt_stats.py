"""The attempt log's arithmetic: minutes, duration buckets, percentiles, tallies.

Shared by every ``AttemptLog`` backend (so each answers the same numbers) and by the
console, which draws them. Durations are counted in a histogram, not kept one by one, so a
minute of any volume is one small record per kind (Firestore: one document per shard,
updated with server-side increments): bucket ``b >= 1`` holds durations in
``[RATIO**(b-1), RATIO**b)`` ms, four buckets per doubling, bucket 0 everything under 1 ms.
A percentile read from it is the geometric middle of its bucket: within 9 % of the true
value, whatever the volume.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TypeVar

from ordertasks.handlers.ports import TIMED_OUTCOMES, AttemptRecord, MinuteTally

K = TypeVar("K")
RATIO = 2 ** 0.25
LAST_BUCKET = 100                # 2**25 ms (9 h): longer attempts count here


def minute_of(moment: datetime) -> datetime:
    """The start of ``moment``'s minute, UTC."""
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def duration_bucket(duration_ms: float) -> int:
    """The histogram bucket of a duration (see the module docstring)."""
    if duration_ms < 1:
        return 0
    return min(LAST_BUCKET, 1 + math.floor(math.log(duration_ms, RATIO) + 1e-9))


def bucket_value(bucket: int) -> float:
    """The duration a bucket stands for: the geometric middle of its bounds (0.5 ms for bucket 0)."""
    return 0.5 if bucket <= 0 else RATIO ** (bucket - 0.5)


def percentile(durations: dict[int, int], fraction: float) -> float | None:
    """The ``fraction`` percentile (nearest rank) of a histogram, in ms; ``None`` when empty."""
    total = sum(durations.values())
    if total <= 0:
        return None
    rank, seen = max(1, math.ceil(fraction * total)), 0
    for bucket in sorted(durations):
        seen += durations[bucket]
        if seen >= rank:
            return bucket_value(bucket)
    return bucket_value(max(durations))


def tally_of(attempt: AttemptRecord) -> MinuteTally:
    """What one attempt adds to its kind's minute."""
    timed = {duration_bucket(attempt.duration_ms): 1} if attempt.outcome in TIMED_OUTCOMES else {}
    return MinuteTally(attempt.kind, minute_of(attempt.finished_at), {attempt.outcome: 1}, timed)


def _summed(a: Mapping[K, int], b: Mapping[K, int]) -> dict[K, int]:
    return {key: a.get(key, 0) + b.get(key, 0) for key in a.keys() | b.keys()}


def merged(tallies: Iterable[MinuteTally]) -> list[MinuteTally]:
    """Tallies of the same kind and minute added together, ordered by minute then kind."""
    found: dict[tuple[datetime, str], MinuteTally] = {}
    for tally in tallies:
        key = (minute_of(tally.minute), tally.kind)
        before = found.get(key)
        found[key] = tally if before is None else MinuteTally(
            tally.kind, key[0], _summed(before.outcomes, tally.outcomes), _summed(before.durations, tally.durations))
    return [found[key] for key in sorted(found)]


def durations_of(tallies: Iterable[MinuteTally]) -> dict[int, int]:
    """The duration histograms of ``tallies`` added together (e.g. an hour of one kind's minutes)."""
    total: dict[int, int] = {}
    for tally in tallies:
        total = _summed(total, tally.durations)
    return total


def within(tallies: Iterable[MinuteTally], since: datetime, until: datetime) -> list[MinuteTally]:
    """The tallies of minutes in ``[since, until)`` (both rounded down to the minute), merged."""
    start, end = minute_of(since), minute_of(until)
    return merged(t for t in tallies if start <= minute_of(t.minute) < end)
