"""The Failed tasks pages: reading filters from a query string, choosing what a bulk action acts on
(the filter's open entries, the ids ticked in the list, or one group of like failures).

Filters arrive as ``?kind=&status=&error_type=&from=YYYY-MM-DD&to=YYYY-MM-DD``; ``to`` is
inclusive (the whole day). A bad value is reported on the page, never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from ordertasks.handlers.errors import OrderTasksError
from ordertasks.handlers.ports import FAILED_STATUSES, FailedFilter, FailedStatus, FailedTask, FailedTaskStore
from ordertasks.producer.failure_groups import group_failures
from ordertasks.producer.triage import REPLAYABLE

BULK_LIMIT = 200
PAGE_SIZE = 50


class BadFilter(OrderTasksError, ValueError):
    """A filter value the console cannot use; the message names it."""


def _day(text: str, name: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise BadFilter(f"{name} must be a date like 2026-03-14, not {text[:30]!r}") from exc


def parse_filter(args: Any, kinds: list[str]) -> FailedFilter:
    """The ``FailedFilter`` a query string asks for; ``BadFilter`` on an unusable value."""
    status, kind = args.get("status") or None, args.get("kind") or None
    if status is not None and status not in FAILED_STATUSES:
        raise BadFilter(f"status must be one of {', '.join(FAILED_STATUSES)}, not {status[:30]!r}")
    if kind is not None and kind not in kinds:
        raise BadFilter(f"kind must be one of the catalog's kinds ({', '.join(kinds)}), not {kind[:40]!r}")
    until = _day(args.get("to", ""), "to")
    return FailedFilter(status=status, kind=kind, error_type=(args.get("error_type") or "").strip() or None,
                        failed_since=_day(args.get("from", ""), "from"),
                        failed_before=until + timedelta(days=1) if until else None)


def filter_args(where: FailedFilter) -> dict[str, str]:
    """The query-string form of a filter (for links and hidden fields)."""
    args = {"status": where.status or "", "kind": where.kind or "", "error_type": where.error_type or "",
            "from": f"{where.failed_since:%Y-%m-%d}" if where.failed_since else "",
            "to": f"{where.failed_before - timedelta(days=1):%Y-%m-%d}" if where.failed_before else ""}
    return {k: v for k, v in args.items() if v}


def query_string(where: FailedFilter, **extra: str) -> str:
    """``?…`` for a filter plus extra parameters."""
    return "?" + urlencode(filter_args(where) | {k: v for k, v in extra.items() if v})


def bulk_filter(where: FailedFilter) -> FailedFilter | None:
    """The filter a bulk replay acts on: open entries unless ``replay_requested`` was asked
    for; ``None`` when the filter only matches entries that are not replayed (replayed, resolved)."""
    if where.status is None:
        return replace(where, status=FailedStatus.OPEN)
    return where if where.status in REPLAYABLE else None


def bulk_selection(store: FailedTaskStore, where: FailedFilter) -> tuple[list[FailedTask], int]:
    """(the first ``BULK_LIMIT`` entries a bulk replay would replay, how many match in all)."""
    return store.page_failed(where, limit=BULK_LIMIT).entries, store.count_failed(where)


ERROR_TYPE_LIMIT = 50


def error_type_choices(store: FailedTaskStore, where: FailedFilter) -> list[str]:
    """The error-type ``<select>``'s options: the types in the log (a bounded distinct query),
    plus the one the filter names if it is not among them."""
    types = store.failed_error_types(ERROR_TYPE_LIMIT)
    return sorted({*types, where.error_type}) if where.error_type and where.error_type not in types else types


@dataclass(frozen=True)
class Selection:
    """The entries a "selected" or "group" action would act on, and what was left out."""

    entries: list[FailedTask]
    skipped: list[str]           # ``id: why`` for ids that are unknown or in the wrong status


def selected(store: FailedTaskStore, ids: list[str], wanted: frozenset[str] | set[str]) -> Selection:
    """The first ``BULK_LIMIT`` distinct ``ids`` whose entries are in a ``wanted`` status."""
    entries, skipped = [], []
    for failed_id in list(dict.fromkeys(ids))[:BULK_LIMIT]:
        entry = store.get_failed(failed_id)
        if entry is None:
            skipped.append(f"{failed_id}: no such entry")
        elif entry.status not in wanted:
            skipped.append(f"{failed_id}: {entry.status}")
        else:
            entries.append(entry)
    return Selection(entries, skipped)


def group_selection(store: FailedTaskStore, where: FailedFilter, error_type: str, message: str) -> Selection | None:
    """The replayable entries of one group (``producer.failure_groups``), ``None`` if it is gone."""
    group = group_failures(store, where).find(error_type, message)
    if group is None:
        return None
    return Selection([e for e in group.entries if e.status in REPLAYABLE][:BULK_LIMIT], [])
