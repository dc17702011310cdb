"""The Overview page: counts per kind and outcome, failures per hour, queue backlog.

Every number is an aggregation query (``count_effects``, ``duplicates_absorbed``,
``count_failed``): the page costs a fixed number of queries whatever the size of the stores.
The chart counts failed-task entries by the hour of their latest failure over the last 24
hours and is drawn here as SVG, so it needs no JavaScript.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

from ordertasks.handlers.ports import LIVE_FAILED, FailedFilter, FailedStatus, TaskState
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
