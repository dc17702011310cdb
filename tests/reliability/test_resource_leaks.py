"""Found by the handler fuzz soak: a threaded server (one thread per request) must not leak
a store connection per request, or the process runs out of file descriptors."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ordertasks.handlers.backends.sqlite import SqliteStore


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_short_lived_threads_do_not_leak_sqlite_connections(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    before = _open_fds()
    for _ in range(300):
        worker = threading.Thread(target=lambda: store.effects.get_effect("ord_1", "record_analytics"))
        worker.start()
        worker.join()
    assert _open_fds() - before < 10, "each finished thread must give its connection back"
    store.close()
