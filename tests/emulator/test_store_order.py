"""The store's two commit paths keep one order: a batch nobody awaits goes to the writer
thread, an awaited one is committed on the loop, and neither overtakes the other.  An
awaited write is in the file (seen by another connection) when it resolves: that is what
lets an acknowledged task survive ``kill -9``."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

from ordertasks.infra.emulator import store as db


def rows(path: Path) -> dict[str, str]:
    """``name -> record`` of the tasks table, read by a connection of our own."""
    with closing(sqlite3.connect(path)) as conn:
        return dict(conn.execute("SELECT name, record FROM tasks"))


def put(name: str, record: str) -> db.Op:
    """A raw task row (the store does not look inside records)."""
    return ("INSERT OR REPLACE INTO tasks (name, queue, record) VALUES (?, 'q', ?)", (name, record))


def test_an_awaited_write_is_in_the_file_when_it_resolves(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"

    async def scenario() -> dict[str, str]:
        store = db.Store(path)
        store.start(asyncio.get_running_loop())
        try:
            await store.write([put("a", "1")])
            return rows(path)
        finally:
            store.close()

    assert asyncio.run(scenario()) == {"a": "1"}


def test_later_writes_and_awaited_writes_commit_in_the_order_they_were_made(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"

    async def scenario() -> list[dict[str, str]]:
        store = db.Store(path)
        store.start(asyncio.get_running_loop())
        seen = []
        try:
            for round_ in range(50):
                store.write_later([put("t", f"later {round_}")])  # goes to the thread
                await asyncio.sleep(0)  # let the flush hand it over, so the thread is busy
                store.write_later([put("t", f"later again {round_}")])
                await store.write([put("t", f"awaited {round_}")])  # must land after both
                seen.append(rows(path))
                store.write_later([("DELETE FROM tasks WHERE name = 't'", ())])
                await store.write([])
                seen.append(rows(path))
        finally:
            store.close()
        return seen

    seen = asyncio.run(scenario())
    assert seen == [row for r in range(50) for row in ({"t": f"awaited {r}"}, {})]


def test_close_commits_what_is_still_queued(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"

    async def scenario() -> None:
        store = db.Store(path)
        store.start(asyncio.get_running_loop())
        for i in range(100):
            store.write_later([put(f"t{i}", "x")])
        store.close()

    asyncio.run(scenario())
    assert len(rows(path)) == 100
