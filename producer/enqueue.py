"""Create an order's Cloud Tasks: deterministic names, schedules, OIDC, concurrent enqueue.

A task name is ``<h>-<order_id>-<kind>`` (``h`` = 8 hex digits of sha256(order_id:kind),
so names spread over Cloud Tasks' key space instead of being sequential). Creating a name
that already exists answers ``ALREADY_EXISTS`` (``Conflict`` over REST, its subclass
``AlreadyExists`` over gRPC), which means "already scheduled": a resubmitted checkout or a
second reconcile run is harmless. A replay from triage adds ``-r<N>`` and runs at once; a task
the auditor creates again after Cloud Tasks dropped it adds ``-a<N>`` (its own numbers, so
an auditor's task never collides with a replay's name, which Cloud Tasks refuses for hours
after the first one finished).

Schedule times derive from the order's ``placed_at``, not from the moment of enqueueing,
so a task enqueued late by ``reconcile`` keeps the time it was promised (Cloud Tasks runs a
past ``scheduleTime`` at once).

``TaskPlanner`` holds all of that; ``Enqueuer`` makes the calls with the synchronous client on
a thread pool, ``AsyncEnqueuer`` with ``CloudTasksAsyncClient`` (gRPC aio) on the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, ContextManager, TypedDict

import requests
from google.api_core import exceptions as gexc
from google.api_core.retry import AsyncRetry, Retry, if_exception_type
from google.cloud import tasks_v2
from google.rpc import code_pb2

from ordertasks.handlers.contract import ORDER_ID_RULE, OrderSnapshot, encode, valid_order_id
from ordertasks.handlers.ports import Clock
from ordertasks.handlers.config import Catalog, Settings
from ordertasks.handlers.kind import SystemClock
from ordertasks.handlers.tracing import LINK_AFTER_SECONDS, NO_SPAN, Span, Tracing, tracing_for

log = logging.getLogger("ordertasks.producer.enqueue")

TASK_ID = re.compile(r"^[A-Za-z0-9_-]{1,500}$")
CREATED, EXISTS, FAILED = "created", "exists", "failed"
MAX_BATCH = 100  # CreateTask requests per BatchCreateTasks, Cloud Tasks' limit
# Errors after which the task stays pending in the outbox for reconcile to pick up.
ENQUEUE_ERRORS: tuple[type[BaseException], ...] = (gexc.GoogleAPIError, requests.RequestException, OSError)


def name_hash(order_id: str, kind: str) -> str:
    """8 hex digits of sha256(``order_id:kind``): the spreading prefix of a task id."""
    return hashlib.sha256(f"{order_id}:{kind}".encode()).hexdigest()[:8]


def task_id(order_id: str, kind: str, replay: int = 0, audit: int = 0) -> str:
    """``<h>-<order_id>-<kind>[-r<N>][-a<M>]``; ``ValueError`` if it cannot be a Cloud Tasks id."""
    if not valid_order_id(order_id):
        raise ValueError(f"order id {order_id[:80]!r} is invalid: {ORDER_ID_RULE}")
    ident = (f"{name_hash(order_id, kind)}-{order_id}-{kind}" + (f"-r{replay}" if replay else "")
             + (f"-a{audit}" if audit else ""))
    if not TASK_ID.match(ident):
        raise ValueError(f"task id {ident[:80]!r} must be 1-500 characters of [A-Za-z0-9_-]")
    return ident


def parent_of(plan: PlannedTask) -> str:
    """The queue path a planned task is created in."""
    return plan.name.split("/tasks/", 1)[0]


def operation_failures(operation: Any, aborted: gexc.GoogleAPICallError | None) -> dict[int, Any]:
    """A finished ``BatchCreateTasks`` operation's failed items (index -> ``google.rpc.Status``).
    ``aborted``: the error its result raised (ABORTED when no item succeeded; the async client
    raises it untyped); re-raised when the operation says nothing about its items (every item
    then counts as not created)."""
    metadata = operation.metadata
    if metadata is None or (aborted is not None and not metadata.failed_requests):
        if aborted is not None:
            raise aborted
        return {}
    return dict(metadata.failed_requests)


def finished_batch(operation: Any, timeout: float) -> dict[int, Any]:
    """Wait for a ``BatchCreateTasks`` operation; its failed items (see ``operation_failures``)."""
    try:
        operation.result(timeout=timeout)
    except gexc.GoogleAPICallError as exc:  # no item succeeded (ABORTED): the metadata says why
        return operation_failures(operation, exc)
    return operation_failures(operation, None)


async def finished_batch_async(operation: Any, timeout: float) -> dict[int, Any]:
    """``finished_batch`` for the async client's operation."""
    try:
        await operation.result(timeout=timeout)
    except gexc.GoogleAPICallError as exc:
        return operation_failures(operation, exc)
    return operation_failures(operation, None)


def queue_path(project: str, location: str, queue: str) -> str:
    """``projects/P/locations/L/queues/Q``."""
    return f"projects/{project}/locations/{location}/queues/{queue}"


def task_name(project: str, location: str, queue: str, order_id: str, kind: str, replay: int = 0,
              audit: int = 0) -> str:
    """The full, deterministic task name of ``(order_id, kind)`` (``-r<N>`` for replays, ``-a<N>``
    for the auditor's re-creations)."""
    return f"{queue_path(project, location, queue)}/tasks/{task_id(order_id, kind, replay, audit)}"


def sibling_name(original_task_name: str, order_id: str, kind: str, replay: int = 0, audit: int = 0) -> str:
    """The name of a replay or re-creation of ``original_task_name``, in the same queue."""
    parent = original_task_name.rsplit("/tasks/", 1)[0]
    return f"{parent}/tasks/{task_id(order_id, kind, replay, audit)}"


@dataclass(frozen=True)
class PlannedTask:
    """What the producer owes Cloud Tasks for one kind of an order (also its outbox entry)."""

    kind: str
    queue: str
    name: str
    schedule_time: datetime


def plan_task(catalog: Catalog, settings: Settings, order_id: str, kind: str, placed_at: datetime,
              replay: int = 0, delay_seconds: float | None = None) -> PlannedTask:
    """Name and schedule of ``kind`` for an order placed at ``placed_at``."""
    config = catalog.kinds[kind]
    delay = config.delay_seconds if delay_seconds is None else delay_seconds
    return PlannedTask(
        kind=kind,
        queue=config.queue,
        name=task_name(catalog.project, catalog.region, config.queue, order_id, kind, replay),
        schedule_time=placed_at + timedelta(seconds=delay * settings.tasks.delay_scale),
    )


@dataclass(frozen=True)
class HandlerTarget:
    """Where a task goes and the OIDC token it carries (the handler's URL and identity)."""

    url: str
    audience: str
    service_account_email: str


def default_target(catalog: Catalog, settings: Settings) -> HandlerTarget:
    """This deployment's handler: ``settings.tasks.handler_url`` and the catalog's dispatcher account."""
    return HandlerTarget(settings.tasks.handler_url, settings.audience,
                         catalog.service_account_email("dispatcher", catalog.project))


def same_queue_as(plan: PlannedTask, original_task_name: str) -> PlannedTask:
    """``plan`` moved into the queue (project, location, queue) of ``original_task_name``.

    Only for a name this deployment wrote itself (the auditor re-creates a task where the
    outbox says the original went). Never pass a name that arrived in a request: a failed
    record's ``task_name`` came from the ``X-CloudTasks-TaskName`` header, so replays take
    the catalog's queue instead (``Enqueuer.replay_body``).
    A name that is not a full task name leaves ``plan`` as it is.
    """
    parts = original_task_name.split("/")
    if len(parts) != 8 or parts[0::2] != ["projects", "locations", "queues", "tasks"]:
        return plan
    parent = "/".join(parts[:6])
    return replace(plan, queue=parts[5], name=f"{parent}/tasks/{plan.name.rsplit('/', 1)[1]}")


def build_task(catalog: Catalog, settings: Settings, plan: PlannedTask, body: bytes,
               target: HandlerTarget | None = None, headers: dict[str, str] | None = None) -> tasks_v2.Task:
    """The ``tasks_v2.Task`` for a planned task: POST to the handler with an OIDC token;
    ``headers``: more HTTP headers of the task (the trace context, ``handlers.tracing``)."""
    config = catalog.kinds[plan.kind]
    target = target or default_target(catalog, settings)
    return tasks_v2.Task(
        name=plan.name,
        schedule_time=plan.schedule_time,
        dispatch_deadline=timedelta(seconds=config.dispatch_deadline_seconds),
        http_request=tasks_v2.HttpRequest(
            http_method=tasks_v2.HttpMethod.POST,
            url=target.url,
            # Cloud Tasks adds no Content-Type of its own to HTTP tasks.
            headers={"Content-Type": "application/json", **(headers or {})},
            body=body,
            oidc_token=tasks_v2.OidcToken(
                service_account_email=target.service_account_email,
                # Explicit: the default audience is the full URL with its query string.
                audience=target.audience,
            ),
        ),
    )


Work = tuple[PlannedTask, bytes]  # a task to create and its body


@dataclass(frozen=True)
class EnqueueResult:
    """What happened to one task: ``created``, ``exists`` (already scheduled) or ``failed``."""

    kind: str
    task_name: str
    status: str
    error: str | None = None

    @property
    def scheduled(self) -> bool:
        """True when Cloud Tasks holds the task (created now or before)."""
        return self.status in (CREATED, EXISTS)


RETRYABLE = if_exception_type(gexc.ServiceUnavailable, gexc.DeadlineExceeded)


class Backoff(TypedDict):
    """Seconds between a ``CreateTask``'s retries, within the call's deadline (both clients)."""

    initial: float
    maximum: float
    multiplier: float


BACKOFF = Backoff(initial=0.1, maximum=1.0, multiplier=2.0)


def _retry(deadline: float) -> Retry:
    return Retry(predicate=RETRYABLE, timeout=deadline, **BACKOFF)


def _async_retry(deadline: float) -> AsyncRetry:
    return AsyncRetry(predicate=RETRYABLE, timeout=deadline, **BACKOFF)


class TaskPlanner:
    """What every enqueuer knows without a Cloud Tasks call: names, schedules, task bodies and
    how a create's answer reads (shared by ``Enqueuer`` and ``AsyncEnqueuer``)."""

    def __init__(self, settings: Settings, catalog: Catalog | None = None, clock: Clock | None = None,
                 target: HandlerTarget | None = None, tracing: Tracing | None = None) -> None:
        # target: where tasks go (default: settings.tasks.handler_url); operator commands pass the deployed handler.
        # tracing: each create is a span whose context the task carries (default: tracing_for(settings)).
        self.target = target
        self.tracing = tracing or tracing_for(settings)
        self.settings = settings
        self.catalog = catalog or settings.catalog()
        self.clock = clock or SystemClock()

    def plan(self, order_id: str, snapshot: OrderSnapshot, kinds: Iterable[str]) -> list[PlannedTask]:
        """The names and schedule times of an order's tasks, without creating them."""
        return [plan_task(self.catalog, self.settings, order_id, k, snapshot.placed_at) for k in kinds]

    def order_work(self, order_id: str, snapshot: OrderSnapshot,
                   kinds: Sequence[str] | None) -> list[Work]:
        """Each task of the order to create (all catalog kinds by default) with its body."""
        plans = self.plan(order_id, snapshot, self.catalog.kinds if kinds is None else kinds)
        return [(p, encode(p.kind, order_id)) for p in plans]

    def replay_plan(self, order_id: str, kind: str, replay: int) -> PlannedTask:
        """The plan of replay ``replay`` of ``(order_id, kind)``: see ``Enqueuer.replay_body``."""
        if replay < 1:
            raise ValueError("replay numbers start at 1; 0 is the original task")
        if kind not in self.catalog.kinds:
            raise ValueError(f"kind {kind[:80]!r} is not in the catalog ({self.catalog.source}), so it has no queue "
                             "to replay into; add the kind back, or resolve the failed task")
        return plan_task(self.catalog, self.settings, order_id, kind, self.clock.now(), replay=replay, delay_seconds=0)

    def recreate_plan(self, original_task_name: str, order_id: str, kind: str, audit: int) -> PlannedTask:
        """The plan of re-creation ``audit`` of ``original_task_name``: see ``Enqueuer.recreate``."""
        if audit < 1:
            raise ValueError("re-creation numbers start at 1; 0 is the original task")
        plan = plan_task(self.catalog, self.settings, order_id, kind, self.clock.now(), delay_seconds=0)
        return replace(same_queue_as(plan, original_task_name),
                       name=sibling_name(original_task_name, order_id, kind, audit=audit))

    def create_request(self, plan: PlannedTask, body: bytes, target: HandlerTarget | None = None) -> dict[str, Any]:
        """The ``parent`` and ``task`` of a ``CreateTask`` call for ``plan``."""
        task = build_task(self.catalog, self.settings, plan, body, target or self.target,
                          self.tracing.task_headers(self.linked(plan.kind)))
        return {"parent": plan.name.split("/tasks/", 1)[0], "task": task}

    def linked(self, kind: str) -> bool:
        """True when ``kind``'s deliveries link to the order's trace rather than continue it
        (a catalog delay of ``LINK_AFTER_SECONDS`` or more: ``handlers.tracing``)."""
        config = self.catalog.kinds.get(kind)
        return config is not None and config.delay_seconds >= LINK_AFTER_SECONDS

    def groups(self, work: list[Work]) -> list[list[Work]]:
        """``work`` as the calls that create it: with ``ORDERTASKS_ENQUEUE_MODE=batch`` one group per
        queue (first appearance first), a ``BatchCreateTasks`` for each group of two or more;
        otherwise one ``CreateTask`` per task."""
        if not self.settings.tasks.enqueue_batches:
            return [[item] for item in work]
        by_queue: dict[str, list[Work]] = {}
        for item in work:
            by_queue.setdefault(parent_of(item[0]), []).append(item)
        return [group[i:i + MAX_BATCH] for group in by_queue.values() for i in range(0, len(group), MAX_BATCH)]

    def batch_request(self, group: list[Work]) -> dict[str, Any]:
        """The ``parent`` and ``requests`` of a ``BatchCreateTasks`` call for ``group`` (one queue)."""
        requests = [self.create_request(plan, body) for plan, body in group]
        return {"parent": requests[0]["parent"], "requests": requests}

    def batch_span(self, group: list[Work]) -> ContextManager[Span]:
        """The span of one ``BatchCreateTasks`` call (the tasks built inside it carry its context)."""
        return self.tracing.span("enqueue batch", "producer", queue=parent_of(group[0][0]),
                                 kinds=",".join(plan.kind for plan, _ in group))

    @staticmethod
    def batch_results(group: list[Work], failed: Mapping[int, Any]) -> list[EnqueueResult]:
        """One result per task of a batch from its operation's ``failed_requests`` (index ->
        ``google.rpc.Status``): absent is created, ALREADY_EXISTS is ``exists``, else ``failed``."""
        results = []
        for index, (plan, _) in enumerate(group):
            status = failed.get(index)
            if status is None:
                results.append(EnqueueResult(plan.kind, plan.name, CREATED))
            elif status.code == code_pb2.ALREADY_EXISTS:
                results.append(EnqueueResult(plan.kind, plan.name, EXISTS))
            else:
                error = f"BatchCreateTasks item {index}: code {status.code}: {status.message}"[:500]
                log.warning("enqueue failed; the outbox keeps it pending", extra={"task_name": plan.name, "error": error})
                results.append(EnqueueResult(plan.kind, plan.name, FAILED, error))
        return results

    @staticmethod
    def in_order(work: list[Work], results: Iterable[EnqueueResult]) -> list[EnqueueResult]:
        """``results`` (from any grouping) in the order of ``work``."""
        by_name = {r.task_name: r for r in results}
        return [by_name[plan.name] for plan, _ in work]

    @staticmethod
    def not_created(plan: PlannedTask, exc: BaseException, span: Span = NO_SPAN) -> EnqueueResult:
        """A create that failed: ``exists`` for a Conflict (ALREADY_EXISTS), else ``failed``
        (logged; the outbox keeps the entry pending; an error on ``span``)."""
        if isinstance(exc, gexc.Conflict):
            span.set(enqueue=EXISTS)
            return EnqueueResult(plan.kind, plan.name, EXISTS)
        span.failed(f"{type(exc).__name__}: {exc}", type(exc).__name__)
        log.warning("enqueue failed; the outbox keeps it pending", extra={"task_name": plan.name, "error": repr(exc)})
        return EnqueueResult(plan.kind, plan.name, FAILED, f"{type(exc).__name__}: {exc}"[:500])


class Enqueuer(TaskPlanner):
    """Creates tasks through a ``CloudTasksClient`` (thread-safe), concurrently per order."""

    def __init__(self, client: Any, settings: Settings, catalog: Catalog | None = None,
                 clock: Clock | None = None, max_workers: int = 32, target: HandlerTarget | None = None,
                 tracing: Tracing | None = None) -> None:
        super().__init__(settings, catalog, clock, target, tracing)
        self.client = client
        # One pool for the process: an order's tasks fan out, orders share the threads.
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="enqueue")

    def enqueue_order(self, order_id: str, snapshot: OrderSnapshot,
                      kinds: Sequence[str] | None = None) -> list[EnqueueResult]:
        """Create the order's tasks (all catalog kinds by default); one result per kind, in order."""
        return self._create_all(self.order_work(order_id, snapshot, kinds))

    def replay_body(self, order_id: str, kind: str, body: bytes, replay: int,
                    target: HandlerTarget | None = None) -> EnqueueResult:
        """Enqueue a task body again as ``…-r<replay>``, due now (failed-task triage).

        The replay goes to the catalog's queue for ``kind`` in this deployment's project and
        location, never to a queue named by the failed delivery (its task name came from a
        request header, which anyone who can reach the handler writes); with ``target`` to
        that handler (else this deployment's ``settings.tasks.handler_url``).
        Raises ``ValueError`` for a kind the catalog does not have.
        """
        return self._create(self.replay_plan(order_id, kind, replay), body, target)

    def recreate(self, original_task_name: str, order_id: str, kind: str, audit: int) -> EnqueueResult:
        """Create ``original_task_name``'s task again as ``…-a<audit>``, due now, in the same queue
        (the auditor, after Cloud Tasks dropped the task before the handler answered)."""
        return self._create(self.recreate_plan(original_task_name, order_id, kind, audit), encode(kind, order_id))

    def close(self) -> None:
        """Stop the worker threads (after the tasks in flight finish)."""
        self._pool.shutdown(wait=True)

    def _create_all(self, work: list[Work]) -> list[EnqueueResult]:
        if not self.settings.tasks.enqueue_concurrently:
            return [self._create(plan, body) for plan, body in work]
        # Each call runs in the caller's context (its current span), not the pool thread's.
        futures = [self._pool.submit(contextvars.copy_context().run, self._create_group, group)
                   for group in self.groups(work)]
        return self.in_order(work, (result for f in futures for result in f.result()))

    def _create_group(self, group: list[Work]) -> list[EnqueueResult]:
        return [self._create(*group[0])] if len(group) == 1 else self._create_batch(group)

    def _create_batch(self, group: list[Work]) -> list[EnqueueResult]:
        timeout = self.settings.tasks.enqueue_timeout_seconds
        with self.batch_span(group) as span:
            try:
                operation = self.client.batch_create_tasks(**self.batch_request(group), timeout=timeout,
                                                           retry=_retry(timeout))
                return self.batch_results(group, finished_batch(operation, timeout))
            except ENQUEUE_ERRORS as exc:
                return [self.not_created(plan, exc, span) for plan, _ in group]

    def _create(self, plan: PlannedTask, body: bytes, target: HandlerTarget | None = None) -> EnqueueResult:
        timeout = self.settings.tasks.enqueue_timeout_seconds
        with self.tracing.span(f"enqueue {plan.kind}", "producer", kind=plan.kind, task_name=plan.name) as span:
            try:
                self.client.create_task(**self.create_request(plan, body, target), timeout=timeout,
                                        retry=_retry(timeout))
            except ENQUEUE_ERRORS as exc:
                return self.not_created(plan, exc, span)
            return EnqueueResult(plan.kind, plan.name, CREATED)


class AsyncEnqueuer(TaskPlanner):
    """Creates tasks through a ``CloudTasksAsyncClient`` (gRPC aio), concurrently on the event
    loop: no threads. The same names, bodies and answers as ``Enqueuer``.

    ``client``: the async client, or ``None`` with ``connect``, a function that builds it: called
    on first use, inside the running loop (a gRPC aio channel belongs to the loop it was made
    in). ``close()`` closes a client this object connected itself, never one it was given.
    """

    def __init__(self, client: Any, settings: Settings, catalog: Catalog | None = None,
                 clock: Clock | None = None, target: HandlerTarget | None = None,
                 connect: Callable[[], Any] | None = None, tracing: Tracing | None = None) -> None:
        super().__init__(settings, catalog, clock, target, tracing)
        if client is None and connect is None:
            raise ValueError("AsyncEnqueuer needs a CloudTasksAsyncClient or a connect() that builds one")
        self._client = client
        self._connect = connect

    @property
    def client(self) -> Any:
        """The async client (connected on first use, in the running loop)."""
        if self._client is None:
            assert self._connect is not None
            self._client = self._connect()
        return self._client

    async def enqueue_order(self, order_id: str, snapshot: OrderSnapshot,
                            kinds: Sequence[str] | None = None) -> list[EnqueueResult]:
        """Create the order's tasks (all catalog kinds by default); one result per kind, in order."""
        work = self.order_work(order_id, snapshot, kinds)
        if not self.settings.tasks.enqueue_concurrently:
            return [await self._create(plan, body) for plan, body in work]
        groups = await asyncio.gather(*(self._create_group(group) for group in self.groups(work)))
        return self.in_order(work, (result for group in groups for result in group))

    async def _create_group(self, group: list[Work]) -> list[EnqueueResult]:
        return [await self._create(*group[0])] if len(group) == 1 else await self._create_batch(group)

    async def _create_batch(self, group: list[Work]) -> list[EnqueueResult]:
        timeout = self.settings.tasks.enqueue_timeout_seconds
        with self.batch_span(group) as span:
            try:
                operation = await self.client.batch_create_tasks(**self.batch_request(group), timeout=timeout,
                                                                 retry=_async_retry(timeout))
                return self.batch_results(group, await finished_batch_async(operation, timeout))
            except ENQUEUE_ERRORS as exc:
                return [self.not_created(plan, exc, span) for plan, _ in group]

    async def replay_body(self, order_id: str, kind: str, body: bytes, replay: int,
                          target: HandlerTarget | None = None) -> EnqueueResult:
        """``Enqueuer.replay_body`` on the event loop."""
        return await self._create(self.replay_plan(order_id, kind, replay), body, target)

    async def recreate(self, original_task_name: str, order_id: str, kind: str, audit: int) -> EnqueueResult:
        """``Enqueuer.recreate`` on the event loop."""
        plan = self.recreate_plan(original_task_name, order_id, kind, audit)
        return await self._create(plan, encode(kind, order_id))

    async def get_task(self, name: str) -> Any:
        """The task ``name`` (raises ``NotFound`` when Cloud Tasks no longer holds it)."""
        return await self.client.get_task(name=name, timeout=self.settings.tasks.enqueue_timeout_seconds)

    async def delete_task(self, name: str) -> None:
        """Delete the task ``name`` (raises ``NotFound`` when it is already gone)."""
        await self.client.delete_task(name=name, timeout=self.settings.tasks.enqueue_timeout_seconds)

    async def close(self) -> None:
        """Close the client's channel, if this object connected it (a later call connects again)."""
        if self._connect is not None and self._client is not None:
            await self._client.transport.close()
            self._client = None

    async def _create(self, plan: PlannedTask, body: bytes, target: HandlerTarget | None = None) -> EnqueueResult:
        timeout = self.settings.tasks.enqueue_timeout_seconds
        with self.tracing.span(f"enqueue {plan.kind}", "producer", kind=plan.kind, task_name=plan.name) as span:
            try:
                await self.client.create_task(**self.create_request(plan, body, target), timeout=timeout,
                                              retry=_async_retry(timeout))
            except ENQUEUE_ERRORS as exc:
                return self.not_created(plan, exc, span)
            return EnqueueResult(plan.kind, plan.name, CREATED)
