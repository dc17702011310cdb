"""Failed tasks grouped by what went wrong: ``(error type, normalised message)`` with counts.

One cause should read as one group however many orders it hit, so the message is normalised
first: the entry's own order id, other order ids (``ord_…``), UUIDs, e-mail addresses, quoted
values and numbers become placeholders (``<order>``, ``<uuid>``, ``<email>``, ``<value>``,
``<n>``). ``warehouse refused the request with 422: unknown SKU 'X-1'`` and the same with
``'B-7'`` are one group, ``… unknown SKU <value>``.

Groups are computed from a bounded read, never the whole log: the ``GROUP_BOUND`` most
recently failed entries that still need a person (``open``, ``replay_requested``) and match the
filter, read with the same indexed, ordered query as a page of the list (``page_failed``);
how many match in all comes from a count aggregation, so a page can say what it left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from ordertasks.handlers.ports import LIVE_FAILED, FailedFilter, FailedTask, FailedTaskStore

GROUP_BOUND = 500

_PLACEHOLDERS = (
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE), "<uuid>"),
    (re.compile(r"\bord_[a-z0-9]+\b"), "<order>"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (re.compile(r"(?<!\w)'[^'\n]*'|\"[^\"\n]*\"|`[^`\n]*`"), "<value>"),
    (re.compile(r"\b\d+(?:[.,]\d+)*\b"), "<n>"),
)


def normalise(message: str, order_id: str = "") -> str:
    """``message`` with the parts that differ from one order to the next replaced by placeholders."""
    text = message.replace(order_id, "<order>") if order_id else message
    for pattern, placeholder in _PLACEHOLDERS:
        text = pattern.sub(placeholder, text)
    return " ".join(text.split())


@dataclass(frozen=True)
class FailureGroup:
    """Entries that failed the same way, most recently failed first."""

    error_type: str
    message: str                 # normalised
    entries: list[FailedTask]

    @property
    def count(self) -> int:
        """How many entries (of those read) are in the group."""
        return len(self.entries)

    @property
    def kinds(self) -> list[str]:
        """The kinds the group's entries are of, sorted."""
        return sorted({entry.kind for entry in self.entries})


@dataclass(frozen=True)
class Grouping:
    """The groups of a filter's live entries: ``read`` of ``matching`` were read (at most ``bound``)."""

    groups: list[FailureGroup]
    read: int
    matching: int
    bound: int

    @property
    def capped(self) -> bool:
        """Some matching entries were left out (the counts are then lower bounds)."""
        return self.read < self.matching

    def find(self, error_type: str, message: str) -> FailureGroup | None:
        """The group with this error type and normalised message, or ``None``."""
        return next((g for g in self.groups if (g.error_type, g.message) == (error_type, message)), None)


def live_filters(where: FailedFilter) -> list[FailedFilter]:
    """``where`` narrowed to each status that needs a person (none when it asks for closed entries)."""
    if where.status is not None:
        return [where] if where.status in LIVE_FAILED else []
    return [replace(where, status=status) for status in sorted(LIVE_FAILED)]


def group_entries(entries: Iterable[FailedTask]) -> list[FailureGroup]:
    """Entries grouped by ``(error_type, normalised message)``: largest group first, then by type."""
    grouped: dict[tuple[str, str], list[FailedTask]] = {}
    for entry in entries:
        grouped.setdefault((entry.error_type, normalise(entry.error, entry.order_id)), []).append(entry)
    groups = [FailureGroup(error_type, message, members) for (error_type, message), members in grouped.items()]
    return sorted(groups, key=lambda g: (-g.count, g.error_type, g.message))


def group_failures(store: FailedTaskStore, where: FailedFilter, bound: int = GROUP_BOUND) -> Grouping:
    """The groups of the (at most ``bound``) most recently failed live entries matching ``where``."""
    filters = live_filters(where)
    read = [entry for f in filters for entry in store.page_failed(f, limit=bound).entries]
    newest = sorted(read, key=lambda e: (e.last_failed_at, e.id), reverse=True)[:bound]
    return Grouping(group_entries(newest), len(newest), sum(store.count_failed(f) for f in filters), bound)
