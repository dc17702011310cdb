"""What the console works on: the stores, the Cloud Tasks client, the catalog, a clock.

``console_from_settings`` picks them exactly as the CLI does (``producer.wiring``): SQLite and
the emulator locally, Firestore and Cloud Tasks with application-default credentials in the
cloud. Tests build ``Console`` directly around other backends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ordertasks.handlers.ports import AttemptLog, Clock, EffectStore, FailedTaskStore, OrderStore
from ordertasks.handlers.settings import Backend
from ordertasks.infra.config import Catalog, Settings
from ordertasks.producer.triage import Triage


@dataclass(frozen=True)
class Console:
    """Everything a page needs: one object per store port, Cloud Tasks, the catalog, a clock."""

    catalog: Catalog
    effects: EffectStore
    failed: FailedTaskStore
    orders: OrderStore
    tasks: Any                     # a google.cloud.tasks_v2 CloudTasksClient
    clock: Clock
    triage: Triage
    where: str                     # shown in the header: which backend and project
    attempts: AttemptLog | None = None   # every delivery's outcome and duration; None: not shown


def describe(settings: Settings, catalog: Catalog) -> str:
    """``local · SQLite …, emulator …`` or ``cloud · project P · location L``."""
    if settings.backend is Backend.CLOUD:
        return f"cloud · project {catalog.project} · location {catalog.region}"
    from ordertasks.producer.wiring import emulator_host

    return f"local · SQLite {settings.store.sqlite_file.name} · Cloud Tasks emulator {emulator_host(settings)}"


def console_from_settings(settings: Settings) -> Console:
    """The console over the configured backends; raises google.auth errors without credentials."""
    from ordertasks.handlers.wiring import build_stores
    from ordertasks.producer import wiring
    from ordertasks.producer.stats import operator_effects
    from ordertasks.producer.triage import build_triage

    catalog = settings.catalog()
    if settings.backend is Backend.CLOUD:
        import google.auth

        google.auth.default()      # fail here, with the credentials page, not on the first query
    stores = build_stores(settings)
    triage = build_triage(settings, stores.failed)
    # Effect states as the order view reads them: create-once kinds' far ends included, from the
    # catalog alone (the console never imports a shop's effect module).
    return Console(catalog, operator_effects(settings, stores, catalog), stores.failed, stores.orders,
                   wiring.tasks_client(settings), wiring.clock(), triage, describe(settings, catalog),
                   stores.attempts)
