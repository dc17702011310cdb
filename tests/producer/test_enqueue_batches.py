"""``ORDERTASKS_ENQUEUE_MODE=batch``: an order's tasks that share a queue are created by one
``BatchCreateTasks`` (the others by ``CreateTask``), with the same names, bodies and answers
as one create per task, against the real emulator over gRPC and REST, with the synchronous
and the async client.

Calls are counted by a pass-through wrapper around the official client (``CountingClient``),
not by patching: the calls still reach the emulator.  Counts derive from the catalog.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ordertasks.handlers.errors import ConfigurationError
from ordertasks.infra.config import Settings
from ordertasks.producer import wiring
from ordertasks.producer.async_library import async_tasks_client
from ordertasks.producer.enqueue import CREATED, EXISTS, FAILED, AsyncEnqueuer, Enqueuer
from tests.effects.orders import eur_order
from tests.producer.conftest import Emulator, list_all_tasks, make_settings


class CountingClient:
    """The official client, counting the calls made through it."""

    def __init__(self, client: Any) -> None:
        self.client, self.calls = client, Counter[str]()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        if not callable(method):
            return method

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return method(*args, **kwargs)
        return counted


def _queues_of(settings: Settings) -> Counter[str]:
    catalog = settings.catalog()
    return Counter(catalog.queue_for(kind).name for kind in catalog.kinds)


def _expected_calls(settings: Settings) -> Counter[str]:
    per_queue = _queues_of(settings).values()
    return Counter({"batch_create_tasks": sum(1 for n in per_queue if n > 1),
                    "create_task": sum(1 for n in per_queue if n == 1)})


def test_the_mode_is_read_and_a_wrong_one_is_refused() -> None:
    tasks = Settings.from_env({"ORDERTASKS_ENQUEUE_MODE": "batch"}).tasks
    assert tasks.enqueue_batches and tasks.enqueue_concurrently
    assert not Settings.from_env({}).tasks.enqueue_batches
    with pytest.raises(ConfigurationError, match="ORDERTASKS_ENQUEUE_MODE"):
        Settings.from_env({"ORDERTASKS_ENQUEUE_MODE": "batches"})


def test_the_catalog_has_a_queue_shared_by_kinds() -> None:
    """Without one, the batch path would never run in these tests."""
    assert max(_queues_of(Settings(catalog_path=make_settings(Path("."), "x").catalog_path)).values()) > 1


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_tasks_sharing_a_queue_go_in_one_batch_and_answer_as_single_creates(
        tmp_path: Path, emulator: Emulator, transport: str) -> None:
    settings = make_settings(tmp_path, emulator.host, tasks={"transport": transport, "enqueue_batches": True})
    client = CountingClient(wiring.tasks_client(settings))
    enqueuer = Enqueuer(client, settings)
    order = eur_order()

    first = enqueuer.enqueue_order("ord_batch_1", order)
    again = enqueuer.enqueue_order("ord_batch_1", order)  # a resubmitted checkout

    kinds = list(settings.catalog().kinds)
    assert [r.kind for r in first] == kinds and {r.status for r in first} == {CREATED}
    assert [r.status for r in again] == [EXISTS] * len(kinds)
    assert client.calls == _expected_calls(settings) + _expected_calls(settings)
    stored = {t.name for t in list_all_tasks(client.client, settings.catalog())}
    assert stored == {r.task_name for r in first}
    enqueuer.close()


def test_a_batch_with_one_task_already_there_creates_the_others(tmp_path: Path, emulator: Emulator) -> None:
    settings = make_settings(tmp_path, emulator.host, tasks={"enqueue_batches": True})
    enqueuer = Enqueuer(wiring.tasks_client(settings), settings)
    shared = next(q for q, n in _queues_of(settings).items() if n > 1)
    kinds = [k for k in settings.catalog().kinds if settings.catalog().queue_for(k).name == shared]
    enqueuer.enqueue_order("ord_batch_2", eur_order(), kinds=kinds[:1])

    results = enqueuer.enqueue_order("ord_batch_2", eur_order(), kinds=kinds)

    assert [r.status for r in results] == [EXISTS] + [CREATED] * (len(kinds) - 1)
    enqueuer.close()


def test_an_unreachable_cloud_tasks_leaves_every_task_of_the_batch_failed(tmp_path: Path) -> None:
    from tests.support.servers import free_port
    settings = make_settings(tmp_path, f"127.0.0.1:{free_port()}",
                             tasks={"enqueue_batches": True, "enqueue_timeout_seconds": 1.0})
    enqueuer = Enqueuer(wiring.tasks_client(settings), settings)

    results = enqueuer.enqueue_order("ord_batch_3", eur_order())

    assert [r.status for r in results] == [FAILED] * len(settings.catalog().kinds)
    assert all(r.error for r in results)
    enqueuer.close()


def test_the_async_client_batches_the_same_way(tmp_path: Path, emulator: Emulator) -> None:
    settings = make_settings(tmp_path, emulator.host, tasks={"enqueue_batches": True})

    async def scenario() -> tuple[list[Any], list[Any], Counter[str]]:
        client = CountingClient(async_tasks_client(settings))
        enqueuer = AsyncEnqueuer(client, settings)
        first = await enqueuer.enqueue_order("ord_batch_4", eur_order())
        again = await enqueuer.enqueue_order("ord_batch_4", eur_order())
        await client.client.transport.close()
        return first, again, client.calls

    first, again, calls = asyncio.run(scenario())
    assert {r.status for r in first} == {CREATED} and {r.status for r in again} == {EXISTS}, [r.error for r in again]
    assert calls == _expected_calls(settings) + _expected_calls(settings)


def test_a_queue_with_more_tasks_than_a_batch_takes_is_split(tmp_path: Path) -> None:
    """Cloud Tasks takes at most 100 creates per BatchCreateTasks (no server needed: grouping only)."""
    from ordertasks.producer.enqueue import MAX_BATCH
    settings = make_settings(tmp_path, "127.0.0.1:9", tasks={"enqueue_batches": True})
    enqueuer = Enqueuer(None, settings)
    plan = enqueuer.plan("ord_many", eur_order(), list(settings.catalog().kinds)[:1])[0]
    work = [(plan, b"{}")] * (MAX_BATCH * 2 + 1)

    assert [len(g) for g in enqueuer.groups(work)] == [MAX_BATCH, MAX_BATCH, 1]
    enqueuer.close()
