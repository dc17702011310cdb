"""The dispatcher: delivers due tasks to their HTTP targets, concurrently, within each
queue's limits, and applies the retry policy to the outcome.

Each queue has a :class:`QueueRunner`: an in-memory heap of (due time, task) plus a pump
coroutine that sleeps until the earliest due task, a free concurrency slot, or a token in
the queue's bucket, whichever it is waiting for; a new task, a finished attempt or a queue
change wakes it early.  Queues pump independently, so a slow or throttled queue never holds
up another.  Attempts run as their own asyncio tasks over one pooled aiohttp session.
"""

from __future__ import annotations

import asyncio
import email.utils
import heapq
import itertools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from ordertasks.infra.emulator.errors import rpc_code_for_http
from ordertasks.infra.emulator.model import Attempt, Queue, QueueState, Task, queue_id_of
from ordertasks.infra.emulator.oidc import TokenMinter
from ordertasks.infra.emulator.routing import Delivery, delivery_for
from ordertasks.infra.emulator.service import TasksService
from ordertasks.infra.emulator.wire import format_timestamp


DEFAULT_APP_ENGINE_HOST = "http://127.0.0.1:8080"
# Cloud Tasks keeps only a target's status code. The answer is read (and dropped, chunk by
# chunk) so a short one leaves the connection reusable; past this many bytes the connection
# is closed instead, so a target answering without end costs neither memory nor the slot.
MAX_ANSWER_BYTES = 1024 * 1024


class TokenBucket:
    """``maxDispatchesPerSecond`` tokens a second, holding at most ``maxBurstSize``; starts full."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.capacity = rate, float(max(1, burst))
        self.tokens, self.updated = self.capacity, now

    def reconfigure(self, rate: float, burst: int) -> None:
        """New limits; tokens already saved are kept up to the new capacity."""
        self.rate, self.capacity = rate, float(max(1, burst))
        self.tokens = min(self.tokens, self.capacity)

    def wait_time(self, now: float) -> float | None:
        """Seconds until a token is available (0 = now; None = never, rate 0)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            return 0.0
        return None if self.rate <= 0 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        """Spend one token (call after ``wait_time`` returned 0)."""
        self.tokens -= 1


@dataclass
class Outcome:
    """What one HTTP attempt produced."""

    status: int | None  # None: no response (timeout, connection error)
    reason: str
    retry_after: float | None
    latency_ms: float


class QueueRunner:
    """The due-task heap and pump of one queue."""

    def __init__(self, queue: Queue, dispatcher: "Dispatcher") -> None:
        self.queue, self.dispatcher = queue, dispatcher
        rate = queue.rate_limits
        self.bucket = TokenBucket(rate.max_dispatches_per_second, rate.max_burst_size, dispatcher.clock())
        self.heap: list[tuple[float, int, str]] = []
        self.latest: dict[str, int] = {}  # task name -> sequence of its one valid heap entry
        self.in_flight = 0
        self.wake = asyncio.Event()
        self.pump_task = asyncio.get_running_loop().create_task(self._pump(), name=f"pump {queue.name}")

    def reconfigure(self, queue: Queue) -> None:
        """Adopt changed limits or state."""
        self.queue = queue
        rate = queue.rate_limits
        self.bucket.reconfigure(rate.max_dispatches_per_second, rate.max_burst_size)
        self.wake.set()

    def push(self, task: Task) -> None:
        """(Re)schedule ``task`` at its ``schedule_time``; an older entry for it becomes stale."""
        seq = next(self.dispatcher.sequence)
        self.latest[task.name] = seq
        heapq.heappush(self.heap, (task.schedule_time, seq, task.name))
        if self.heap[0][1] == seq:
            self.wake.set()

    def forget(self, name: str) -> None:
        """Drop ``name``'s heap entry (it is running now, or gone)."""
        self.latest.pop(name, None)

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            delay = self._release_due()
            if delay is None:
                await self.wake.wait()
            else:
                timer = loop.call_later(delay, self.wake.set)
                await self.wake.wait()
                timer.cancel()
            self.wake.clear()

    def _release_due(self) -> float | None:
        """Start every attempt the limits allow now; return how long to sleep (None: until woken)."""
        tasks = self.dispatcher.service.tasks.get(self.queue.name, {})
        while self.heap:
            due, seq, name = self.heap[0]
            task = tasks.get(name)
            if self.latest.get(name) != seq or task is None:
                heapq.heappop(self.heap)
                continue
            wait = self._wait_before(due)
            if wait != 0.0:
                return wait
            heapq.heappop(self.heap)
            self.bucket.take()
            self.forget(name)
            self.in_flight += 1
            self.dispatcher.start_attempt(task, self)
        return None

    def _wait_before(self, due: float) -> float | None:
        if self.queue.state != QueueState.RUNNING:
            return None
        if self.in_flight >= self.queue.rate_limits.max_concurrent_dispatches:
            return None
        now = self.dispatcher.clock()
        if due > now:
            return due - now
        return self.bucket.wait_time(now)

    def attempt_done(self, counted: bool) -> None:
        """An attempt finished: free its concurrency slot."""
        if counted:
            self.in_flight -= 1
            self.wake.set()

    def stop(self) -> None:
        """Stop pumping (the queue was deleted or the emulator stops)."""
        self.pump_task.cancel()


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


async def discard_answer(resp: aiohttp.ClientResponse, limit: int = MAX_ANSWER_BYTES) -> int:
    """Read and drop ``resp``'s body up to ``limit`` bytes; close the connection if there is more.
    Returns the bytes read."""
    read = 0
    while read <= limit:
        chunk = await resp.content.readany()
        if not chunk:
            return read
        read += len(chunk)
    resp.close()  # never returned to the pool with an answer still streaming in
    return read


class Dispatcher:
    """Runs every queue's pump and every attempt; implements the service's ``Scheduler``."""

    def __init__(self, service: TasksService, minter: TokenMinter, session: aiohttp.ClientSession,
                 clock: Callable[[], float] = time.time, log_line: Callable[[str], None] | None = None,
                 app_engine_host: str = DEFAULT_APP_ENGINE_HOST, quiet: bool = False) -> None:
        self.service, self.minter, self.session, self.clock = service, minter, session, clock
        self.quiet = quiet  # no log line at all: not even built (a JSON dump per attempt adds up)
        self.app_engine_host = app_engine_host
        self.log_line = log_line if log_line is not None else _stderr_line
        self.runners: dict[str, QueueRunner] = {}
        self.running: set[str] = set()
        self.attempts: set[asyncio.Task[None]] = set()
        self.sequence = itertools.count()

    # -- Scheduler -------------------------------------------------------------------------

    def queue_updated(self, queue: Queue) -> None:
        """Create or reconfigure the queue's runner."""
        runner = self.runners.get(queue.name)
        if runner is None:
            self.runners[queue.name] = QueueRunner(queue, self)
        else:
            runner.reconfigure(queue)

    def queue_deleted(self, name: str) -> None:
        """Stop the queue's pump; attempts in flight finish and find their task gone."""
        runner = self.runners.pop(name, None)
        if runner is not None:
            runner.stop()

    def task_added(self, task: Task) -> None:
        """Schedule a new (or restored) task."""
        runner = self.runners.get(task.queue_name)
        if runner is not None:
            runner.push(task)

    def run_now(self, task: Task) -> bool:
        """Dispatch immediately, outside the limits; False if an attempt is already in flight."""
        runner = self.runners.get(task.queue_name)
        if runner is None or task.name in self.running:
            return False
        runner.forget(task.name)
        self.start_attempt(task, runner, counted=False)
        return True

    # -- attempts --------------------------------------------------------------------------

    def start_attempt(self, task: Task, runner: QueueRunner, counted: bool = True) -> None:
        """Run one attempt of ``task`` as its own asyncio task."""
        self.running.add(task.name)
        job = asyncio.get_running_loop().create_task(self._attempt(task, runner, counted))
        self.attempts.add(job)
        job.add_done_callback(self.attempts.discard)

    async def _attempt(self, task: Task, runner: QueueRunner, counted: bool) -> None:
        try:
            delivery = delivery_for(task, runner.queue, self.app_engine_host)
            self._add_headers(delivery, task, runner.queue)
            self._mark_dispatched(task)
            outcome = await self._send(task, delivery)
        finally:
            self.running.discard(task.name)
            runner.attempt_done(counted)
        self._settle(task, runner, outcome)

    def _mark_dispatched(self, task: Task) -> None:
        now = self.clock()
        task.dispatch_count += 1
        if task.first_attempt is None:
            task.first_attempt = Attempt(dispatch_time=now)
        task.last_attempt = Attempt(schedule_time=task.schedule_time, dispatch_time=now)

    def _add_headers(self, delivery: Delivery, task: Task, queue: Queue) -> None:
        """The per-attempt headers (``X-CloudTasks-*``, or ``X-AppEngine-*``) and authorization."""
        prefix = "X-AppEngine-" if delivery.app_engine else "X-CloudTasks-"
        headers = delivery.headers
        if not delivery.app_engine:
            headers["User-Agent"] = "Google-Cloud-Tasks"
        headers.update({
            prefix + "QueueName": queue.queue_id,
            prefix + "TaskName": task.task_id,
            prefix + "TaskRetryCount": str(task.dispatch_count),
            prefix + "TaskExecutionCount": str(task.execution_count),
            prefix + "TaskETA": f"{task.schedule_time:.6f}",
        })
        if task.dispatch_count:
            if task.previous_status is not None:
                headers[prefix + "TaskPreviousResponse"] = str(task.previous_status)
            headers[prefix + "TaskRetryReason"] = task.retry_reason or "unknown"
        if delivery.oidc_token is not None:
            audience = delivery.oidc_token.audience or delivery.url
            headers["Authorization"] = "Bearer " + self.minter.token(delivery.oidc_token.service_account_email, audience)
        elif delivery.oauth_token is not None:
            token = delivery.oauth_token
            headers["Authorization"] = "Bearer " + self.minter.access_token(token.service_account_email, token.scope)

    async def _send(self, task: Task, delivery: Delivery) -> Outcome:
        started = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=task.dispatch_deadline)
        try:
            async with self.session.request(delivery.method.name, delivery.url, headers=delivery.headers,
                                            data=delivery.body or None, timeout=timeout, allow_redirects=False,
                                            skip_auto_headers=("Content-Type",)) as resp:
                await discard_answer(resp)
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"), self.clock())
                return Outcome(resp.status, f"HTTP {resp.status} {resp.reason or ''}".strip(), retry_after,
                               (time.monotonic() - started) * 1000)
        except asyncio.TimeoutError:
            reason = f"DEADLINE_EXCEEDED: no response within the dispatch deadline ({task.dispatch_deadline:g}s)"
        except (aiohttp.ClientError, OSError) as exc:
            reason = f"UNAVAILABLE: {type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - a request that cannot be sent is a failed attempt, never a stuck task
            reason = f"INTERNAL: the request could not be sent: {type(exc).__name__}: {exc}"
        return Outcome(None, reason, None, (time.monotonic() - started) * 1000)

    # -- outcomes --------------------------------------------------------------------------

    def _settle(self, task: Task, runner: QueueRunner, outcome: Outcome) -> None:
        """Apply the outcome: completed, retry later, or give up."""
        now = self.clock()
        self._record_response(task, outcome, now)
        if not self.service.live(task):
            return self._log(task, outcome, "deleted-while-running", None)
        if outcome.status is not None and 200 <= outcome.status < 300:
            self.service.finish_task(task)
            return self._log(task, outcome, "completed", None)
        retry = task.retry_config or runner.queue.retry_config
        first = task.first_attempt.dispatch_time if task.first_attempt and task.first_attempt.dispatch_time else now
        if retry.exhausted(task.dispatch_count, first, now):
            self.service.finish_task(task)
            return self._log(task, outcome, "gave-up: retries exhausted, task deleted", None)
        delay = retry.backoff(task.dispatch_count - 1)
        if outcome.status in (429, 503) and outcome.retry_after is not None:
            delay = max(delay, outcome.retry_after)
        task.schedule_time = now + delay
        self.service.save_task_later(task)
        current = self.runners.get(task.queue_name)
        if current is not None:
            current.push(task)
        self._log(task, outcome, "retry", task.schedule_time)

    @staticmethod
    def _record_response(task: Task, outcome: Outcome, now: float) -> None:
        task.retry_reason = outcome.reason
        task.previous_status = outcome.status
        if task.last_attempt is None or outcome.status is None:
            return
        task.response_count += 1
        if outcome.status < 500:
            task.execution_count += 1
        task.last_attempt.response_time = now
        task.last_attempt.response_status = (rpc_code_for_http(outcome.status), outcome.reason)

    def _log(self, task: Task, outcome: Outcome, result: str, next_attempt: float | None) -> None:
        if self.quiet:
            return
        self.log_line(json.dumps({
            "severity": "INFO" if result == "completed" else "WARNING",
            "message": f"attempt {task.dispatch_count} of {task.task_id}: {result}",
            "queue": queue_id_of(task.name), "task": task.task_id, "attempt": task.dispatch_count,
            "status": outcome.status, "reason": outcome.reason, "latency_ms": round(outcome.latency_ms, 2),
            "result": result, "next_attempt": format_timestamp(next_attempt) if next_attempt else None,
        }))

    # -- lifecycle -------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop every pump and abandon attempts in flight (their tasks stay stored and run again)."""
        for runner in self.runners.values():
            runner.stop()
        for job in list(self.attempts):
            job.cancel()
        await asyncio.gather(*[r.pump_task for r in self.runners.values()], *self.attempts, return_exceptions=True)


def _stderr_line(line: str) -> None:
    sys.stderr.write(line + "\n")
