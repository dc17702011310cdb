"""A closed-loop HTTP load generator on asyncio + aiohttp.

``concurrency`` workers each send one request, wait for its answer, send the next, until
``count`` requests were sent or ``duration`` seconds passed. One pooled keep-alive session
(as a real Cloud Tasks front end or shop frontend would hold).

``run_paced`` is the open-loop variant: requests are due at a fixed ``rate`` (request ``i``
at ``start + i / rate``), sent by at most ``concurrency`` clients, and each latency is
measured from when the request was *due*, not from when a client got round to sending it
— so a server that falls behind shows the queueing it causes (no coordinated omission). Each benchmark checks that
this generator drives its bare baseline faster than the system under test, so the
generator is not what limits a figure.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

RequestFactory = Callable[[int], tuple[bytes, dict[str, str]]]


@dataclass
class LoadResult:
    """Latencies (ms) of the answered requests, wall time, and the status codes seen."""

    latencies_ms: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0

    @property
    def throughput(self) -> float:
        """Answered requests per second."""
        return len(self.latencies_ms) / self.elapsed if self.elapsed else 0.0


async def _worker(session: aiohttp.ClientSession, url: str, make: RequestFactory, counter: "itertools.count[int]",
                  count: int | None, deadline: float, result: LoadResult) -> None:
    while time.perf_counter() < deadline:
        index = next(counter)
        if count is not None and index >= count:
            return
        body, headers = make(index)
        await _post(session, url, body, headers, time.perf_counter(), result)


async def _post(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], since: float,
                result: LoadResult) -> None:
    """One request; its status, or an error; its latency counted from ``since`` (the paced
    generator's due time, so a late start counts against the server: no coordinated omission)."""
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            result.statuses[resp.status] += 1
    except (aiohttp.ClientError, asyncio.TimeoutError):
        result.errors += 1
        return
    result.latencies_ms.append((time.perf_counter() - since) * 1000)


async def _run(url: str, make: RequestFactory, concurrency: int, count: int | None, duration: float | None) -> LoadResult:
    result = LoadResult()
    counter = itertools.count()
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        deadline = started + (duration if duration is not None else 3600.0)
        await asyncio.gather(*[_worker(session, url, make, counter, count, deadline, result)
                               for _ in range(concurrency)])
        result.elapsed = time.perf_counter() - started
    return result


async def _paced_worker(session: aiohttp.ClientSession, url: str, make: RequestFactory,
                        counter: "itertools.count[int]", due: Callable[[int], float], deadline: float,
                        result: LoadResult) -> None:
    while True:
        index = next(counter)
        start = due(index)
        if start >= deadline:
            return
        await asyncio.sleep(max(0.0, start - time.perf_counter()))
        body, headers = make(index)
        await _post(session, url, body, headers, start, result)


async def _run_paced(url: str, make: RequestFactory, concurrency: int, rate: float, duration: float) -> LoadResult:
    result = LoadResult()
    counter = itertools.count()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        started = time.perf_counter() + 0.05
        await asyncio.gather(*[_paced_worker(session, url, make, counter, lambda i: started + i / rate,
                                             started + duration, result) for _ in range(concurrency)])
        result.elapsed = max(time.perf_counter() - started, duration)
    return result


def run_paced(url: str, make: RequestFactory, concurrency: int, rate: float, duration: float) -> LoadResult:
    """POST to ``url`` at ``rate`` requests/s for ``duration`` s with at most ``concurrency``
    in flight; latencies from each request's due time (see module docstring)."""
    return asyncio.run(_run_paced(url, make, concurrency, rate, duration))


def run_load(url: str, make: RequestFactory, concurrency: int = 1, count: int | None = None,
             duration: float | None = None) -> LoadResult:
    """POST to ``url`` until ``count`` requests or ``duration`` seconds (see module docstring)."""
    if count is None and duration is None:
        raise ValueError("give a request count or a duration")
    return asyncio.run(_run(url, make, concurrency, count, duration))


def constant(body: bytes = b"", headers: dict[str, str] | None = None) -> RequestFactory:
    """A factory sending the same body and headers every time."""
    fixed = dict(headers or {})
    return lambda _index: (body, fixed)
