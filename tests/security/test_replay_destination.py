"""Item F9: a replay goes to the catalog's queue for the kind, never to a queue a request named.

The handler records a failed delivery's ``task_name`` and ``queue`` from the
``X-CloudTasks-TaskName``/``-QueueName`` headers, which whoever reaches the handler writes. A
replay used to be created in the queue that name pointed at, another project's included. Now
it goes to the catalog's queue for the kind, in the deployment's project and location, still
named ``…-r<N>``. Real emulator, real SQLite store, the wiring ``ordertasks failed replay``
and the console use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.cloud import tasks_v2

from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.handlers.contract import encode
from ordertasks.handlers.ports import FailureReport
from ordertasks.handlers.settings import Backend, Settings, StoreSettings, TasksSettings
from ordertasks.producer.enqueue import task_name
from ordertasks.producer.replay_target import write_stack_record
from ordertasks.producer.triage import TriageError, build_triage
from tests.emulator.conftest import Emulator, start_emulator
from tests.support.samples import fast_catalog

DEPLOYMENT = "shop-deploy"          # the deployment's project (flag/ORDERTASKS_PROJECT), not the catalog's
FOREIGN_QUEUE = "projects/victim-project/locations/asia-east1/queues/their-queue"
KIND = "notify_warehouse"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fast_catalog(tmp_path_factory.mktemp("replay-catalog"))


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory, catalog: Path) -> Iterator[Emulator]:
    """The catalog's queues in the deployment's project, and another project's queue, all paused."""
    emu = start_emulator(tmp_path_factory.mktemp("replay-emulator"),
                         extra=["--queues", str(catalog), "--project", DEPLOYMENT])
    client = emu.client()
    client.create_queue(parent=FOREIGN_QUEUE.rsplit("/queues/", 1)[0], queue={"name": FOREIGN_QUEUE})
    for queue in client.list_queues(parent=f"projects/{DEPLOYMENT}/locations/{settings_for(catalog).catalog().region}"):
        client.pause_queue(name=queue.name)
    client.pause_queue(name=FOREIGN_QUEUE)
    try:
        yield emu
    finally:
        emu.process.stop()


def settings_for(catalog: Path, data_dir: Path | None = None, emulator: Emulator | None = None) -> Settings:
    return Settings(backend=Backend.LOCAL, catalog_path=catalog, project=DEPLOYMENT,
                    store=StoreSettings(data_dir=data_dir or Path("var")),
                    tasks=TasksSettings(emulator_host=f"127.0.0.1:{emulator.port}" if emulator else None))


def forged_failure(store: SqliteStore, order_id: str, kind: str = KIND) -> str:
    """A failed record as the handler writes it for a delivery whose headers named another project's queue."""
    report = FailureReport(order_id, kind, "their-queue", f"{FOREIGN_QUEUE}/tasks/forged-{order_id}",
                           json.loads(encode(kind, order_id)), "Rejected", "warehouse answered 422", 8,
                           datetime.now(UTC))
    return store.failed.record_failure(report).id


@pytest.fixture
def replay_setup(tmp_path: Path, catalog: Path, emulator: Emulator) -> Iterator[tuple[Settings, SqliteStore]]:
    settings = settings_for(catalog, tmp_path, emulator)
    write_stack_record(tmp_path, "http://127.0.0.1:9/handler/", f"127.0.0.1:{emulator.port}", "http://127.0.0.1:9/")
    store = SqliteStore(settings.store.sqlite_file)
    try:
        yield settings, store
    finally:
        store.close()


def test_a_forged_task_name_header_does_not_choose_the_replays_queue(replay_setup: tuple[Settings, SqliteStore],
                                                                     emulator: Emulator) -> None:
    """Attack: a delivery with `X-CloudTasks-TaskName` naming another project's queue fails; an operator replays it."""
    settings, store = replay_setup
    failed_id = forged_failure(store, "ord_forged1")
    result = build_triage(settings, store.failed).replay(failed_id)
    catalog = settings.catalog()
    expected = task_name(DEPLOYMENT, catalog.region, catalog.kinds[KIND].queue, "ord_forged1", KIND, replay=1)
    assert (result.status, result.task_name) == ("created", expected)
    assert expected.endswith("-ord_forged1-notify_warehouse-r1")
    client = emulator.client()
    assert client.get_task(request={"name": expected, "response_view": tasks_v2.Task.View.FULL}).name == expected
    assert list(client.list_tasks(parent=FOREIGN_QUEUE)) == []
    assert store.failed.get_failed(failed_id).status == "replayed"


def test_a_forged_kind_is_not_replayed_anywhere(replay_setup: tuple[Settings, SqliteStore], emulator: Emulator) -> None:
    """Attack: the same with a kind the catalog does not have: no queue of ours, so no replay at all."""
    settings, store = replay_setup
    failed_id = forged_failure(store, "ord_forged2", kind="wire_money")
    with pytest.raises(TriageError, match="not in the catalog"):
        build_triage(settings, store.failed).replay(failed_id)
    assert store.failed.get_failed(failed_id).status == "open"
    assert list(emulator.client().list_tasks(parent=FOREIGN_QUEUE)) == []
