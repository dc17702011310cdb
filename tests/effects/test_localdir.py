"""LocalDirBlobStore: write-once, never partial, never outside its root."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from ordertasks.handlers.backends.localdir import LocalDirBlobStore


@pytest.fixture
def store(tmp_path: Path) -> LocalDirBlobStore:
    """A store rooted in a fresh directory."""
    return LocalDirBlobStore(tmp_path / "root")


def test_put_once_writes_then_refuses_to_overwrite(store: LocalDirBlobStore) -> None:
    assert store.put_once("invoices/A1.pdf", b"first", "application/pdf") is True
    assert store.put_once("invoices/A1.pdf", b"second", "application/pdf") is False
    assert store.get("invoices/A1.pdf") == b"first"
    assert store.get("invoices/missing.pdf") is None


def test_no_temp_files_are_left_behind(store: LocalDirBlobStore) -> None:
    store.put_once("invoices/A1.pdf", b"x", "application/pdf")
    store.put_once("invoices/A1.pdf", b"y", "application/pdf")
    assert sorted(os.listdir(store.root / "invoices")) == ["A1.pdf"]


def test_concurrent_writers_have_exactly_one_winner(store: LocalDirBlobStore) -> None:
    results: dict[int, bool] = {}
    start = threading.Barrier(20)

    def write(n: int) -> None:
        start.wait()
        results[n] = store.put_once("invoices/race.pdf", f"writer {n}".encode() * 1000, "application/pdf")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [n for n, written in results.items() if written]
    assert len(winners) == 1
    assert store.get("invoices/race.pdf") == f"writer {winners[0]}".encode() * 1000


@pytest.mark.parametrize("path", [
    "../escape.pdf", "invoices/../../escape.pdf", "/etc/passwd", "invoices\\..\\x.pdf", "", "invoices//a.pdf",
    "./invoices/a.pdf", "invoices/..", "a\x00b", "invoices/.partial-abc",
])
def test_paths_that_could_escape_are_refused(store: LocalDirBlobStore, path: str) -> None:
    with pytest.raises(ValueError):
        store.put_once(path, b"x", "application/pdf")
    with pytest.raises(ValueError):
        store.get(path)


def test_symlink_pointing_outside_root_is_refused(store: LocalDirBlobStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store.root.mkdir(parents=True)
    (store.root / "invoices").symlink_to(outside)
    with pytest.raises(ValueError, match="outside"):
        store.put_once("invoices/a.pdf", b"x", "application/pdf")
    assert list(outside.iterdir()) == []
