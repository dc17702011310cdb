"""The Overview page: the live last hour, counts per kind and outcome, failures per hour, queue backlog.

Every number is an aggregation query (``count_effects``, ``duplicates_absorbed``,
``count_failed``): the page costs a fixed number of queries whatever the size of the stores.
The chart counts failed-task entries by the hour of their latest failure over the last 24
hours and is drawn here as SVG, so it needs no JavaScript.

The live part (``live_overview``) is the attempt log's last hour: per kind, attempts done,
retrying and failed per minute (a stacked bar a minute) and the p50/p95 duration of the
attempts that ran the effect. It is one ``minute_tallies`` query for every kind (minutes
already closed are kept between refreshes: ``ClosedMinutes``), served alone as a fragment (``/overview/live``) that ``static/live.js`` fetches every few seconds
and swaps in, so the page updates without a reload; without JavaScript the page is as it
was rendered.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

from ordertasks.handlers import attempt_stats
from ordertasks.handlers.ports import (LIVE_FAILED, AttemptLog, AttemptOutcome, FailedFilter, FailedStatus, MinuteTally,
                                       TaskState)
from ordertasks.infra.console.context import Console
from ordertasks.producer.effect_states import state_counts

HOURS = 24
# Effects per state, in the vocabulary the API and ``ordertasks stats`` use (docs/library.md,
# "Effect states"), then duplicates and the failed-task log's triage statuses.
STATES = (TaskState.DONE, TaskState.RUNNING, TaskState.RETRYING, TaskState.FAILED, TaskState.CANCELLED)
OUTCOMES = (*STATES, "duplicates", "log open", "log replayed", "log resolved")


@dataclass(frozen=True)
class KindCounts:
    """One kind's row."""

    kind: str
    queue: str
    counts: dict[str, int]


def kind_counts(console: Console, kind: str) -> KindCounts:
    """Counts of one kind by outcome."""
    effects = console.effects

    def failed(*statuses: str) -> int:
        return sum(console.failed.count_failed(FailedFilter(status=s, kind=kind)) for s in statuses)
    states = state_counts(effects, kind)
    counts = {**{state: states[state] for state in STATES}, "duplicates": effects.duplicates_absorbed(kind),
              "log open": failed(*LIVE_FAILED), "log replayed": failed(FailedStatus.REPLAYED),
              "log resolved": failed(FailedStatus.RESOLVED)}
    return KindCounts(kind, console.catalog.kinds[kind].queue, counts)


def failures_per_hour(console: Console, now: datetime) -> list[tuple[datetime, int]]:
    """(hour start, failed entries whose latest failure fell in that hour), oldest first."""
    top = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    starts = [top - timedelta(hours=HOURS - i) for i in range(HOURS)]
    return [(start, console.failed.count_failed(FailedFilter(failed_since=start, failed_before=start + timedelta(hours=1))))
            for start in starts]


def bar_chart(series: list[tuple[datetime, int]], width: int = 720, height: int = 180) -> Markup:
    """An SVG bar chart of hourly counts, labelled every 3 hours (UTC) with the peak marked."""
    peak = max((n for _, n in series), default=0)
    scale = max(peak, 1)
    left, bottom, top = 32, 24, 12
    slot = (width - left) / max(len(series), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="failed tasks per hour, last {len(series)} hours, peak {peak}">',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" class="axis"/>',
             f'<text x="{left - 6}" y="{top + 4}" class="tick" text-anchor="end">{peak}</text>',
             f'<text x="{left - 6}" y="{height - bottom}" class="tick" text-anchor="end">0</text>']
    for i, (start, count) in enumerate(series):
        bar = (height - bottom - top) * count / scale
        x = left + i * slot + 2
        label = escape(f"{start:%H}:00 UTC: {count} failed")
        parts.append(f'<rect x="{x:.1f}" y="{height - bottom - bar:.1f}" width="{slot - 4:.1f}" height="{bar:.1f}" '
                     f'class="bar{" peak" if count and count == peak else ""}"><title>{label}</title></rect>')
        if i % 3 == 0:
            parts.append(f'<text x="{x + (slot - 4) / 2:.1f}" y="{height - 6}" class="tick" '
                         f'text-anchor="middle">{start:%H}h</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


# --- the live last hour -----------------------------------------------------------------

LIVE_MINUTES = 60
LIVE_REFRESH_SECONDS = 5
# What the live chart stacks, bottom up, and the word each bar part is shown with.
LIVE_SERIES = ((AttemptOutcome.DONE, "done"), (AttemptOutcome.RETRY, "retrying"), (AttemptOutcome.FAILED, "failed"))


@dataclass(frozen=True)
class KindLive:
    """One kind's last hour: per minute (start, {outcome: attempts}), totals and percentiles."""

    kind: str
    minutes: list[tuple[datetime, dict[str, int]]]
    totals: dict[str, int]
    p50_ms: float | None
    p95_ms: float | None

    @property
    def empty(self) -> bool:
        """No attempt ended in the hour."""
        return not any(self.totals.values())


@dataclass(frozen=True)
class LiveOverview:
    """The live section: every kind's last hour, as of ``now``."""

    now: datetime
    kinds: list[KindLive]
    available: bool = True           # False: this console has no attempt log to read


class ClosedMinutes:
    """The tallies of minutes that can no longer change, kept between refreshes.

    An attempt is counted in the minute it ended, written as it ends, so a minute is closed
    once it is ``MARGIN`` in the past (room for clocks of handler instances a little apart
    and writes in flight). A refresh then reads only the open minutes and, once a minute,
    the one that just closed: on Firestore a few documents instead of an hour of them.
    """

    MARGIN = timedelta(minutes=2)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: datetime | None = None       # tallies cover [window start, _until)
        self._tallies: list[MinuteTally] = []

    def tallies(self, log: AttemptLog, since: datetime, until: datetime) -> list[MinuteTally]:
        """The tallies of ``[since, until)``: closed minutes from here (read once), the rest from ``log``."""
        closed = max(since, until - self.MARGIN)
        with self._lock:
            start = since if self._until is None or self._until < since else self._until
            if start < closed:
                self._tallies += log.minute_tallies(start, closed)
            self._tallies = [t for t in self._tallies if since <= t.minute < closed]
            self._until = closed
            kept = list(self._tallies)
        return kept + log.minute_tallies(closed, until)


def live_overview(console: Console, now: datetime, closed: ClosedMinutes | None = None) -> LiveOverview:
    """The last ``LIVE_MINUTES`` minutes (the current one included) of every catalog kind;
    ``closed`` keeps the minutes already read (one per console)."""
    kinds = list(console.catalog.kinds)
    if console.attempts is None:
        return LiveOverview(now, [kind_live(kind, [], now) for kind in kinds], available=False)
    until = attempt_stats.minute_of(now) + timedelta(minutes=1)
    tallies = (closed or ClosedMinutes()).tallies(console.attempts, until - timedelta(minutes=LIVE_MINUTES), until)
    return LiveOverview(now, [kind_live(kind, [t for t in tallies if t.kind == kind], now) for kind in kinds])


def kind_live(kind: str, tallies: list[MinuteTally], now: datetime) -> KindLive:
    """One kind's hour from its minute tallies (minutes without any as zeros)."""
    last = attempt_stats.minute_of(now)
    by_minute = {t.minute: t for t in attempt_stats.merged(tallies)}
    minutes = [last - timedelta(minutes=LIVE_MINUTES - 1 - i) for i in range(LIVE_MINUTES)]
    series = [(m, dict(by_minute[m].outcomes) if m in by_minute else {}) for m in minutes]
    totals = {outcome: sum(counts.get(outcome, 0) for _, counts in series) for outcome in AttemptOutcome}
    durations = attempt_stats.durations_of(by_minute.values())
    return KindLive(kind, series, totals, attempt_stats.percentile(durations, 0.5),
                    attempt_stats.percentile(durations, 0.95))


def duration_text(ms: float | None) -> str:
    """``840 ms``, ``3.2 s``, ``2.5 min``; ``-`` when nothing was timed."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"
    return f"{ms / 1000:.1f} s" if ms < 120_000 else f"{ms / 60_000:.1f} min"


def minute_chart(live: KindLive, width: int = 560, height: int = 130) -> Markup:
    """A stacked SVG bar a minute (done, retrying, failed), labelled every 10 minutes (UTC)."""
    peak = max((sum(c.get(o, 0) for o, _ in LIVE_SERIES) for _, c in live.minutes), default=0)
    scale, (left, bottom, top) = max(peak, 1), (28, 20, 10)
    slot = (width - left) / len(live.minutes)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart live-chart" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{escape(live.kind)}: attempts per minute, last {len(live.minutes)} minutes, '
             f'peak {peak}">',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" class="axis"/>',
             f'<text x="{left - 5}" y="{top + 4}" class="tick" text-anchor="end">{peak}</text>',
             f'<text x="{left - 5}" y="{height - bottom}" class="tick" text-anchor="end">0</text>']
    for i, (minute, counts) in enumerate(live.minutes):
        x = left + i * slot + 0.5
        parts.extend(_stack(x, slot - 1, counts, (height - bottom - top) / scale, height - bottom, minute))
        if i % 10 == 0:
            parts.append(f'<text x="{x:.1f}" y="{height - 5}" class="tick">{minute:%H:%M}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _stack(x: float, width: float, counts: dict[str, int], unit: float, base: float, minute: datetime) -> list[str]:
    """One minute's bar: a rect per series with attempts, stacked upwards, with its tooltip."""
    label = escape(f"{minute:%H:%M} UTC: " + ", ".join(f"{counts.get(o, 0)} {word}" for o, word in LIVE_SERIES))
    rects, y = [], base
    for outcome, word in LIVE_SERIES:
        if counts.get(outcome, 0):
            height = counts[outcome] * unit
            y -= height
            rects.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" '
                         f'class="bar-{word}"><title>{label}</title></rect>')
    return rects
