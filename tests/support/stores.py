"""Stores in the states tests need: an effect store whose done mark fails once, a locked SQLite file.

Both are real backends (the memory store, a real SQLite file another connection has locked),
never mocks: the code under test meets them through its ports.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ordertasks.handlers.backends import memory
from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.handlers.errors import DependencyUnavailable
from ordertasks.handlers.ports import Stores


class DoneMarkFailsOnce(memory.MemoryEffectStore):
    """An effect store whose first ``complete_effect`` fails, as a store outage right after an effect would."""

    def __init__(self) -> None:
        super().__init__()
        self.failures_left = 1

    def complete_effect(self, order_id: str, kind: str, result: dict[str, Any], now: datetime, *,
                        duplicate: bool = False) -> None:
        """Fail once with ``DependencyUnavailable``, then behave."""
        if self.failures_left:
            self.failures_left -= 1
            raise DependencyUnavailable("store went away after the effect")
        super().complete_effect(order_id, kind, result, now, duplicate=duplicate)


def done_mark_fails_once() -> Stores:
    """Memory stores whose effect store is ``DoneMarkFailsOnce``."""
    return replace(memory.stores(), effects=DoneMarkFailsOnce())


@contextmanager
def locked_sqlite(path: Path, busy_timeout: float) -> Iterator[SqliteStore]:
    """A SQLite store at ``path`` whose file another connection holds an exclusive lock on."""
    store = SqliteStore(path, busy_timeout=busy_timeout)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield store
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        store.close()
