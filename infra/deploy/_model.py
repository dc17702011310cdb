"""What a deployment is made of: resources, the settings we want on them, gcloud commands.

A ``Resource`` knows the gcloud command that creates it, the one that describes it (JSON),
how to tell from that JSON which of our settings differ, the command that changes only
those, and the one that deletes it. ``plan`` prints ``create``; ``apply`` describes first.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Command = tuple[str, ...]
"""A gcloud command line without the leading ``gcloud``."""

SECTIONS = ("apis", "accounts", "secrets", "bucket", "firestore", "queues", "function", "maintenance",
            "checkout", "iam", "ttl", "indexes", "scheduler", "monitoring")
"""Plan order: every section only needs what the ones before it created."""


def lookup(document: Any, path: str) -> Any:
    """The value at dotted ``path`` in a describe JSON document, ``None`` when absent."""
    value = document
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def same(actual: Any, want: Any) -> bool:
    """Equality that ignores the int/float/str-number spelling differences of JSON APIs."""
    if isinstance(want, bool) or want is None:
        return actual == want
    if isinstance(want, (int, float)):
        try:
            return float(actual if actual is not None else 0) == float(want)
        except (TypeError, ValueError):
            return False
    return actual == want


def duration(seconds: float) -> str:
    """A protobuf Duration string, the form gcloud flags and the APIs both use: ``10s``."""
    return f"{seconds:g}s"


def same_duration(actual: Any, want: Any) -> bool:
    """Compare ``"10s"``-style durations; an absent duration counts as ``0s`` (unset)."""
    text = str(actual or "0s")
    return float(text.rstrip("s") or 0) == float(str(want).rstrip("s"))


def same_subset(actual: Any, want: Mapping[str, Any]) -> bool:
    """True when every key of ``want`` is in ``actual`` with the same value (others are kept)."""
    return isinstance(actual, Mapping) and all(actual.get(k) == v for k, v in want.items())


@dataclass(frozen=True)
class Setting:
    """One setting we own: its API field, the value we want there, the flags that set it."""

    name: str
    path: str
    want: Any
    flags: tuple[str, ...]
    equal: Callable[[Any, Any], bool] = same
    # For documents a dotted path cannot reach (lists, keys with dots): how to read the value.
    read: Callable[[Any], Any] | None = None

    def differs(self, document: Any) -> bool:
        """True when ``document`` (describe JSON) does not hold the wanted value."""
        actual = self.read(document) if self.read else lookup(document, self.path)
        return not self.equal(actual, self.want)


def _no_diff(_: Any) -> list[str]:
    return []


def _found(_: Any) -> bool:
    return True


@dataclass(frozen=True)
class Resource:
    """One thing in the cloud that ``apply`` makes exist with our settings."""

    section: str
    label: str
    create: Command
    describe: Command | None = None
    diff: Callable[[Any], list[str]] = _no_diff
    update: Callable[[Sequence[str]], Command] | None = None
    delete: Command | None = None
    holds_data: bool = False
    # For grants the resource (a policy) always exists; the binding in it is what may not.
    exists: Callable[[Any], bool] = _found
    # Ids the server assigns (alert policies, dashboards, indexes): update and delete are
    # built from what describe found.
    update_found: Callable[[Any, Sequence[str]], Command] | None = None
    delete_found: Callable[[Any], Command] | None = None
    # Set for what apply must find but never creates (a secret's value is the operator's):
    # the message says how to create it.
    absent: str | None = None


def with_settings(section: str, label: str, *, create: Command, update: Command | None,
                  settings: Sequence[Setting], describe: Command, delete: Command | None = None,
                  holds_data: bool = False) -> Resource:
    """A resource whose create command sets every setting and whose update sets only those that differ.

    ``update=None`` means the create command is also the update (``gcloud functions deploy``).
    """
    flags = {s.name: s.flags for s in settings}
    full = (*create, *(f for group in flags.values() for f in group))

    def diff(document: Any) -> list[str]:
        return [s.name for s in settings if s.differs(document)]

    def update_only(names: Sequence[str]) -> Command:
        return (*update, *(f for n in names for f in flags[n])) if update else full
    return Resource(section, label, full, describe, diff, update_only, delete, holds_data)


def render(command: Command) -> str:
    """The command as a person would type it in a POSIX shell."""
    return "gcloud " + " ".join(shlex.quote(part) for part in command)
