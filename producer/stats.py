"""``ordertasks stats``: queue depth (through the Cloud Tasks API, so the same command works
against the cloud and the emulator) and, per kind, effects done, in progress, duplicates
absorbed, failures by status and the oldest open failure."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from handlers.ports import EffectStore, FailedTaskStore
from infra.config import Catalog
from producer.enqueue import queue_path
from producer.triage import age, table


def queue_depths(client: Any, catalog: Catalog) -> dict[str, int | str]:
    """Queue → tasks waiting (or the error that prevented counting)."""
    depths: dict[str, int | str] = {}
    for name in catalog.queues:
        try:
            tasks = client.list_tasks(parent=queue_path(catalog.project, catalog.region, name), timeout=10)
            depths[name] = sum(1 for _ in tasks)
        except Exception as exc:  # noqa: BLE001 - report per queue, keep going
            depths[name] = f"unavailable ({type(exc).__name__})"
    return depths


def kind_rows(store: Any, catalog: Catalog, now: datetime) -> list[tuple[str, ...]]:
    """One row per kind: done, in progress, duplicates, open/replayed/resolved failures, oldest open."""
    effects = store.effect_counts() if isinstance(store, EffectStore) else {}
    failed = store.list_failed(limit=100_000) if isinstance(store, FailedTaskStore) else []
    rows = []
    for kind in catalog.kinds:
        counts = effects.get(kind, {})
        mine = [f for f in failed if f.kind == kind]
        open_ = [f for f in mine if f.status in ("open", "replay_requested")]
        oldest = age(min(f.first_failed_at for f in open_), now) if open_ else "-"
        rows.append((kind, str(counts.get("done", 0)), str(counts.get("in_progress", 0)),
                     str(counts.get("duplicates", 0)), str(len(open_)),
                     str(sum(f.status == "replayed" for f in mine)),
                     str(sum(f.status == "resolved" for f in mine)), oldest))
    return rows


def render(depths: dict[str, int | str], rows: list[tuple[str, ...]]) -> str:
    """Both tables, as a person reads them."""
    queues = table(("QUEUE", "TASKS WAITING"), [(q, str(d)) for q, d in depths.items()])
    kinds = table(("KIND", "DONE", "IN PROGRESS", "DUPLICATES", "FAILED OPEN", "REPLAYED", "RESOLVED",
                   "OLDEST OPEN"), rows)
    return f"{queues}\n\n{kinds}"


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """``ordertasks stats``."""
    from infra.config import Settings
    from producer import wiring

    argparse.ArgumentParser(prog="ordertasks stats", description=__doc__).parse_args(argv)
    settings = Settings.from_env()
    catalog = settings.catalog()
    store = wiring.order_store(settings)
    now = wiring.clock().now()
    print(render(queue_depths(wiring.tasks_client(settings), catalog), kind_rows(store, catalog, now)),
          file=out or sys.stdout)
    return 0
