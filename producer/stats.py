"""``ordertasks stats``: each queue's backlog (through the Cloud Tasks API, so the same command
works against the cloud and the emulator) and, per kind, effects per state (done, running,
retrying, failed, cancelled: the words of docs/library.md, "Effect states"), duplicates
absorbed and the failed-task log's entries by triage status.

Everything is counted without reading records one by one: effect and failure counts are
aggregation queries (SQL ``COUNT``/``SUM``, Firestore ``count()``/``sum()``), and "backlog"
is tasks due now, not tasks scheduled for later (a 7-day review request is not backlog) nor
tasks waiting out a retry backoff (counted as retrying).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from ordertasks.handlers.errors import OrderTasksError
from ordertasks.handlers.ports import LIVE_FAILED, EffectStore, FailedFilter, FailedStatus, FailedTaskStore, TaskState
from ordertasks.handlers.effect_records import RecordedEffects
from ordertasks.handlers.kind import FarEnds
from ordertasks.handlers.registry import catalog_done_records
from ordertasks.handlers.wiring import Stores, build_blobs, build_stores
from ordertasks.producer.backend_flags import CREDENTIALS_HINT, add_backend_flags, is_missing_credentials, reading_settings
from ordertasks.handlers.config import Catalog, Settings
from ordertasks.producer.backlog import Backlog, queue_backlog
from ordertasks.producer.effect_states import state_counts
from ordertasks.producer.enqueue import queue_path
from ordertasks.producer.terminal import for_terminal, plain_help
from ordertasks.producer.triage import age, table


# The effect states counted per kind, in the vocabulary's words (docs/library.md, "Effect states").
STATE_COLUMNS = (TaskState.DONE, TaskState.RUNNING, TaskState.RETRYING, TaskState.FAILED, TaskState.CANCELLED)


def operator_effects(settings: Settings, stores: Stores, catalog: Catalog) -> RecordedEffects:
    """The effect states operator views read (``stats``, the console): as
    ``handlers.wiring.recorded_effects``, but with the far-end done records of the catalog alone
    (``handlers.registry.catalog_done_records``), so a shop's effect module is never imported:
    these commands work where the shop's code is not installed."""
    ends = FarEnds(blobs=build_blobs(settings, catalog), analytics=stores.analytics)
    return RecordedEffects(stores.effects, catalog_done_records(catalog), ends)


def queue_backlogs(client: Any, catalog: Catalog, now: datetime) -> dict[str, Backlog | str]:
    """Queue → its backlog (or the error that prevented counting it)."""
    backlogs: dict[str, Backlog | str] = {}
    for name in catalog.queues:
        try:
            backlogs[name] = queue_backlog(client, queue_path(catalog.project, catalog.region, name), now)
        except Exception as exc:  # noqa: BLE001 - report per queue, keep going
            backlogs[name] = f"unavailable ({type(exc).__name__}: {str(exc)[:120]})"
    return backlogs


def kind_row(failed_log: FailedTaskStore, effects: EffectStore, kind: str, now: datetime) -> tuple[str, ...]:
    """One kind: effects per state (``producer.effect_states``: done, running, retrying, failed,
    cancelled), duplicates, the failed-task log's open/replayed/resolved, last failure's age.

    ``effects``: where effect states are read (the CLI passes the view that also counts
    create-once kinds at their far end, ``handlers.effect_records``).
    """
    def failed(status: str) -> int:
        return failed_log.count_failed(FailedFilter(status=status, kind=kind))
    latest = failed_log.page_failed(FailedFilter(kind=kind), limit=1).entries
    states = state_counts(effects, kind)
    return (kind, *(str(states[s]) for s in STATE_COLUMNS), str(effects.duplicates_absorbed(kind)),
            str(sum(failed(s) for s in LIVE_FAILED)), str(failed(FailedStatus.REPLAYED)),
            str(failed(FailedStatus.RESOLVED)), age(latest[0].last_failed_at, now) + " ago" if latest else "-")


def kind_rows(failed_log: FailedTaskStore, effects: EffectStore, catalog: Catalog, now: datetime) -> list[tuple[str, ...]]:
    """One row per catalog kind."""
    return [kind_row(failed_log, effects, kind, now) for kind in catalog.kinds]


def _queue_cells(name: str, backlog: Backlog | str, now: datetime) -> tuple[str, ...]:
    if isinstance(backlog, str):
        return (name, backlog, "", "", "")
    plus = "+" if backlog.capped else ""
    oldest = age(backlog.oldest_due, now) if backlog.oldest_due else "-"
    return (name, f"{backlog.due_now}{plus}", f"{backlog.retrying}{plus}", f"{backlog.later}{plus}", oldest)


def render(backlogs: dict[str, Backlog | str], rows: list[tuple[str, ...]], now: datetime) -> str:
    """Both tables, as a person reads them."""
    queues = table(("QUEUE", "DUE NOW", "RETRYING", "SCHEDULED LATER", "OLDEST DUE"),
                   [_queue_cells(q, b, now) for q, b in backlogs.items()])
    kinds = table(("KIND", *(s.upper() for s in STATE_COLUMNS), "DUPLICATES", "LOG OPEN", "LOG REPLAYED",
                   "LOG RESOLVED", "LAST FAILURE"), rows)
    return f"{queues}\n\n{kinds}"


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """``ordertasks stats``."""
    from ordertasks.producer import wiring

    parser = argparse.ArgumentParser(prog="ordertasks stats", description=plain_help(__doc__))
    add_backend_flags(parser, init=True)
    settings = reading_settings(parser.parse_args(argv), tasks_api=True)
    try:
        catalog = settings.catalog()
        stores = build_stores(settings)
        effects = operator_effects(settings, stores, catalog)
        now = wiring.clock().now()
        text = render(queue_backlogs(wiring.tasks_client(settings), catalog, now),
                      kind_rows(stores.failed, effects, catalog, now), now)
    except OrderTasksError as exc:
        print(f"ordertasks stats: the store is unavailable: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if is_missing_credentials(exc):
            print(f"ordertasks stats: {CREDENTIALS_HINT}", file=sys.stderr)
            return 1
        raise
    print(for_terminal(text), file=out or sys.stdout)
    return 0
