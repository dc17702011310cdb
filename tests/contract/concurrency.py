"""Run one call from many threads released at the same instant."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def all_at_once(call: Callable[[int], T], threads: int = 20) -> list[T]:
    """``call(i)`` for i in range(threads), all started together behind a barrier; results in order."""
    barrier = threading.Barrier(threads, timeout=30)

    def run(index: int) -> T:
        barrier.wait()
        return call(index)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(run, range(threads)))
