"""``LocalOrderTasks``: ``OrderTasks`` in one process, for a shop's unit tests (``ordertasks.testing``).

    with local_order_tasks() as tasks:          # the catalog of ORDERTASKS_CONFIG (or catalog=)
        tasks.schedule(order)
        tasks.advance(10)                       # seconds, or a timedelta
        for delivered in tasks.run_due():       # every task due now, through the real dispatcher
            print(delivered.kind, delivered.attempt, delivered.outcome)

Everything is real except what would leave the process: the library API, the enqueuer, the
handler's ``Dispatcher`` (claims, retries, the failed-task log, cancellation) and the
catalog's kinds, imported as the handler imports them. What stands in:

| part | here | deployed |
|---|---|---|
| stores | memory (``handlers/backends/memory.py``) | Firestore or SQLite |
| queues | ``InProcessCloudTasks`` on the clock below | Cloud Tasks or the emulator |
| time | ``ManualClock``: moves when ``advance`` says | the wall clock |
| mail, invoices, webhooks | ``handlers/backends/memory_far_ends.py`` | SMTP, GCS, HTTP |

``run_due`` plays Cloud Tasks' part for each due task: one delivery with the headers Cloud
Tasks sends (the retry count, hence the attempt the dispatcher compares with the queue's
``max_attempts``), then what Cloud Tasks does with the answer: a 2xx (done, duplicate,
cancelled, dead) ends the task; a 503 (retry) schedules the next attempt after the queue's
backoff (``QueueConfig.backoff_seconds``, or the ``Retry-After`` if longer) until both of
the queue's retry limits are used up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from ordertasks.handlers.backends import memory
from ordertasks.handlers.backends.memory_far_ends import MemoryBlobStore, MemoryMailer, MemoryWebhook, WebhookCall
from ordertasks.handlers.config import Catalog, Settings
from ordertasks.handlers.dispatch import Delivery, Dispatcher, Outcome, Result
from ordertasks.handlers.effect_records import RecordedEffects
from ordertasks.handlers.kind import EffectContext, FarEnds, Seller, SystemClock
from ordertasks.handlers.ports import Clock, EffectStore, FailedTask, Stores
from ordertasks.handlers.registry import KindRegistry
from ordertasks.handlers.settings import Backend, OidcSettings, TasksSettings
from ordertasks.producer.enqueue import Enqueuer
from ordertasks.producer.inprocess_tasks import InProcessCloudTasks, QueuedTask
from ordertasks.producer.library import OrderTasks

LOCAL_HANDLER_URL = "http://ordertasks.invalid/tasks"   # never called: deliveries go to the dispatcher
RUN_ALL_LIMIT = timedelta(days=30)


def seconds_of(by: float | timedelta) -> float:
    """``by`` in seconds; ``ValueError`` for a step back in time."""
    seconds = by.total_seconds() if isinstance(by, timedelta) else float(by)
    if seconds < 0:
        raise ValueError(f"time only moves forward: advance by 0 or more seconds, not {seconds:g}")
    return seconds


class ManualClock:
    """A clock that moves when told (``advance``).

    With ``start`` it stands still at ``start`` until advanced. Without, it is the wall clock
    plus every advance so far, so an order a shop's checkout stamps with ``datetime.now()``
    is due exactly when its delay says.
    """

    def __init__(self, start: datetime | None = None, wall: Clock | None = None) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("start must be timezone-aware, e.g. datetime(2026, 3, 1, tzinfo=timezone.utc)")
        self.start = start
        self.wall = wall or SystemClock()
        self.offset = timedelta(0)

    def now(self) -> datetime:
        """The time: ``start`` (or the wall clock) plus every advance."""
        return (self.start or self.wall.now()) + self.offset

    def advance(self, by: float | timedelta) -> datetime:
        """Move forward by ``by`` (seconds or a ``timedelta``); the new time."""
        self.offset += timedelta(seconds=seconds_of(by))
        return self.now()


@dataclass(frozen=True)
class Delivered:
    """One delivery ``run_due`` made, and what became of it.

    ``outcome``: ``done``, ``duplicate``, ``cancelled``, ``dead`` (in the failed-task log) or
    ``retry`` (``retry_at`` says when the next attempt is due; ``None`` when the queue gave
    up). ``attempt`` is 1-based; ``error`` and ``error_type`` are set for ``retry`` and ``dead``.
    """

    kind: str | None
    order_id: str | None
    attempt: int
    outcome: str
    error: str | None
    error_type: str | None
    task_name: str
    at: datetime
    retry_at: datetime | None = None


@dataclass(frozen=True)
class MemoryFarEnds:
    """Where the effects of a local run land: read them back in a test."""

    mailer: MemoryMailer
    blobs: MemoryBlobStore
    webhooks: dict[str, MemoryWebhook]
    webhook_calls: list[WebhookCall]


def local_settings(catalog: str | Path | None = None, base: Settings | None = None) -> Settings:
    """``base`` (default ``Settings.from_env()``: ``ORDERTASKS_CONFIG``, the seller, the sender)
    made local: the catalog ``catalog`` if given, real delays, tasks created one by one."""
    base = base or Settings.from_env()
    settings = base.with_changes(backend=Backend.LOCAL, oidc=OidcSettings(verify=False),
                                 tasks=TasksSettings(handler_url=LOCAL_HANDLER_URL, enqueue_concurrently=False))
    return settings if catalog is None else settings.with_changes(catalog_path=Path(catalog))


def memory_far_ends(kinds: KindRegistry, clock: Clock) -> MemoryFarEnds:
    """An empty mailer and bucket, and a recording webhook target for each webhook kind."""
    calls: list[WebhookCall] = []
    webhooks = {name: MemoryWebhook(name, calls) for name in kinds.webhooks}
    return MemoryFarEnds(MemoryMailer(), MemoryBlobStore(clock), webhooks, calls)


class LocalOrderTasks(OrderTasks):
    """``OrderTasks`` over memory stores and ``InProcessCloudTasks``, with a handler in process
    (see the module docstring). Build it with ``local_order_tasks``."""

    def __init__(self, settings: Settings, catalog: Catalog, clock: ManualClock, stores: Stores | None = None) -> None:
        self.registry = KindRegistry.from_catalog(catalog)      # refuses a kind as the handler would
        self.queue = InProcessCloudTasks(catalog, clock)
        enqueuer = Enqueuer(self.queue, settings, catalog, clock=clock, max_workers=1)
        super().__init__(settings, stores or memory.stores(), enqueuer, clock, owned=[enqueuer])
        self.manual_clock = clock
        self.far_ends = memory_far_ends(self.registry, clock)
        self.dispatcher = Dispatcher(self.registry, self._context(), self.stores.effects, self.stores.failed,
                                     self.stores.orders, catalog, clock, attempts=self.stores.attempts)

    def _context(self) -> EffectContext:
        seller = Seller(self.settings.seller.name, self.settings.seller.address, self.settings.seller.tax_id,
                        self.settings.smtp.mail_from)
        ends = self.far_ends
        return EffectContext(mailer=ends.mailer, blobs=ends.blobs, analytics=self.stores.analytics,
                             clock=self.clock, seller=seller, analytics_shards=self.catalog.analytics_shards,
                             webhooks=ends.webhooks, email=self.catalog.email)

    @property
    def effects(self) -> EffectStore:
        """Effect states as the status views read them, over the memory bucket (not a directory)."""
        ends = FarEnds(blobs=self.far_ends.blobs, analytics=self.stores.analytics)
        return RecordedEffects(self.stores.effects, self.registry.done_records, ends)

    def __enter__(self) -> "LocalOrderTasks":
        """``with local_order_tasks() as tasks:`` closes it at the end."""
        return self

    # --- time and deliveries ------------------------------------------------------------

    def advance(self, by: float | timedelta) -> datetime:
        """Move the clock forward by ``by`` (seconds or a ``timedelta``); the new time.
        Nothing runs until ``run_due``."""
        return self.manual_clock.advance(by)

    def run_due(self) -> list[Delivered]:
        """Deliver every task due now, earliest first, each once, through the dispatcher;
        what happened to each. A retry is due after its queue's backoff: advance, run again."""
        return [self._attempt(queued) for queued in self.queue.due(self.clock.now()) if self.queue.holds(queued.name)]

    def run_all(self, within: float | timedelta = RUN_ALL_LIMIT) -> list[Delivered]:
        """Advance from one due time to the next and deliver, until no task is due within
        ``within`` of now (30 days): every effect an order owes, retries included."""
        horizon = self.clock.now() + timedelta(seconds=seconds_of(within))
        delivered = self.run_due()
        while (due := self.queue.next_due()) is not None and due <= horizon:
            self.advance(max(timedelta(0), due - self.clock.now()))
            delivered += self.run_due()
        return delivered

    def _attempt(self, queued: QueuedTask) -> Delivered:
        now = self.clock.now()
        delivery = Delivery(body=bytes(queued.task.http_request.body), task_name=queued.name.rsplit("/", 1)[1],
                            queue_name=queued.queue.name, retry_count=queued.dispatch_count)
        queued.dispatch_count += 1
        queued.first_attempt_at = queued.first_attempt_at or now
        result = self.dispatcher.run(delivery)
        retry_at = self._settle(queued, result, now)
        failed = result.outcome in (Outcome.RETRY, Outcome.DEAD)
        return Delivered(result.kind, result.order_id, delivery.attempt, result.outcome.value,
                         result.message if failed else None, result.error_type if failed else None,
                         queued.name, now, retry_at)

    def _settle(self, queued: QueuedTask, result: Result, now: datetime) -> datetime | None:
        """What Cloud Tasks does with the answer (``functions/main.py``: only a retry is a 503)."""
        if result.outcome is not Outcome.RETRY:
            queued.execution_count += 1
            self.queue.finish(queued.name)
            return None
        if queued.exhausted(now):
            self.queue.finish(queued.name)
            return None
        delay = max(queued.queue.backoff_seconds(queued.dispatch_count - 1), result.retry_after or 0.0)
        self.queue.retry_at(queued.name, now + timedelta(seconds=delay))
        return now + timedelta(seconds=delay)

    # --- what the effects did -----------------------------------------------------------

    @property
    def sent_emails(self) -> list[EmailMessage]:
        """Every email the kinds sent, in order."""
        return list(self.far_ends.mailer.sent)

    @property
    def blobs(self) -> MemoryBlobStore:
        """The invoice bucket: ``blobs.get("invoices/<order_id>.pdf")``, ``blobs.paths()``."""
        return self.far_ends.blobs

    @property
    def webhook_calls(self) -> list[WebhookCall]:
        """Every POST the webhook kinds made, in order."""
        return list(self.far_ends.webhook_calls)

    @property
    def webhooks(self) -> dict[str, MemoryWebhook]:
        """Each webhook kind's target: set ``.answer`` to make it fail (raise) or answer otherwise."""
        return self.far_ends.webhooks

    def failed_tasks(self, order_id: str | None = None) -> list[FailedTask]:
        """The failed-task log (every status), oldest first; only ``order_id``'s when given."""
        entries = self.stores.failed.list_failed(limit=100_000)
        return [e for e in reversed(entries) if order_id in (None, e.order_id)]


def local_order_tasks(catalog: str | Path | None = None, *, start: datetime | None = None,
                      settings: Settings | None = None, stores: Stores | None = None) -> LocalOrderTasks:
    """A ``LocalOrderTasks`` for ``catalog`` (default: ``ORDERTASKS_CONFIG``, else the shipped
    catalog), its clock at ``start`` (default: the wall clock, moved by ``advance``).

    ``settings``: the base to make local instead of ``Settings.from_env()``; ``stores``: other
    store ports than fresh memory ones. Raises ``CatalogError`` as the handler would at start
    (a kind that does not import, a queue the catalog lacks, ...).
    """
    chosen = local_settings(catalog, settings)
    return LocalOrderTasks(chosen, chosen.catalog(), ManualClock(start), stores)

