"""``await AsyncOrderTasks.schedule(order, transaction=…)`` and ``await AsyncOrderTasks.relay()``
over a real PostgreSQL (the session's private cluster) and the real Cloud Tasks emulator,
through each asyncio API a shop holds a transaction in (SQLAlchemy ``AsyncConnection`` and
``AsyncSession``, psycopg 3's ``AsyncConnection``): rolled back, nothing anywhere; committed,
every kind once after the relay; fifty checkouts in fifty transactions open at once, then one
relay; a relay that dies or is cancelled between Cloud Tasks and its mark, repeated
harmlessly; four relays at once over 200 orders without a task created twice; the refusals.

Each test is a coroutine run by ``asyncio.run`` (no pytest plugin). Counts come from the
catalog (``tasks.kinds``), never written down here.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ordertasks import AsyncOrderTasks, OrderTasks
from ordertasks.handlers.config import Settings
from ordertasks.producer import wiring
from ordertasks.producer.library import OrderNotFound
from ordertasks.producer.outbox import OutboxCounts, UnsupportedTransaction, open_database, outbox_for
from ordertasks.producer.outbox.async_relay import AsyncRelay
from tests.outbox.conftest import ShopDatabase, order, shop_database
from tests.producer.conftest import Emulator, list_all_tasks, make_settings

T = TypeVar("T")
ASYNC_APIS = ["sqlalchemy-async-connection", "sqlalchemy-async-session", "psycopg-async"]


def run(scenario: Coroutine[Any, Any, T]) -> T:
    """Run one test's coroutine on a fresh event loop."""
    return asyncio.run(scenario)


def libpq_url(shop: ShopDatabase) -> str:
    """The shop database's URL as psycopg reads it (SQLAlchemy's ``+psycopg`` dropped)."""
    return shop.url.replace("+psycopg", "")


@asynccontextmanager
async def async_transaction(shop: ShopDatabase, api: str, commit: bool = True) -> AsyncIterator[Any]:
    """The object an async shop passes as ``transaction=`` through ``api``; committed (or rolled
    back) when the block ends."""
    if api == "psycopg-async":
        import psycopg

        conn = await psycopg.AsyncConnection.connect(libpq_url(shop))
        try:
            yield conn
            await (conn.commit() if commit else conn.rollback())
        finally:
            await conn.close()
        return
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    engine = create_async_engine(shop.url)
    try:
        async with (engine.connect() if api == "sqlalchemy-async-connection" else AsyncSession(engine)) as held:
            yield held
            await (held.commit() if commit else held.rollback())
    finally:
        await engine.dispose()


def emulator_task_names(settings: Settings) -> list[str]:
    """Every task the emulator holds in the catalog's queues (read with the synchronous client)."""
    client = wiring.tasks_client(settings)
    try:
        return [t.name for t in list_all_tasks(client, settings.catalog())]
    finally:
        client.transport.close()


@pytest.fixture
def shop(tmp_path: Path, request: pytest.FixtureRequest) -> ShopDatabase:
    """The shop's own PostgreSQL database, with the outbox tables."""
    return shop_database("postgresql", tmp_path, request)


@pytest.fixture
def settings(tmp_path: Path, emulator: Emulator, shop: ShopDatabase) -> Settings:
    return make_settings(tmp_path, emulator.host, store={"outbox_url": shop.url})


@pytest.mark.parametrize("api", ASYNC_APIS)
def test_a_rolled_back_async_schedule_leaves_nothing_anywhere(settings: Settings, shop: ShopDatabase,
                                                              api: str) -> None:
    async def scenario() -> None:
        async with AsyncOrderTasks.from_settings(settings) as tasks:
            async with async_transaction(shop, api, commit=False) as transaction:
                results = await tasks.schedule(order("ord_rolled_back"), transaction=transaction)
                assert [(r.kind, r.state) for r in results] == [(kind, "pending") for kind in tasks.kinds]
            assert (await tasks.relay()).relayed == 0
            with pytest.raises(OrderNotFound):
                await tasks.status("ord_rolled_back")

    run(scenario())
    assert emulator_task_names(settings) == []
    assert shop.counts() == OutboxCounts(0, 0, 0)


@pytest.mark.parametrize("api", ASYNC_APIS)
def test_a_committed_async_schedule_is_relayed_once(settings: Settings, shop: ShopDatabase, api: str) -> None:
    async def scenario() -> tuple[list[str], int]:
        async with AsyncOrderTasks.from_settings(settings) as tasks:
            async with async_transaction(shop, api) as transaction:
                pending = await tasks.schedule(order("ord_committed"), transaction=transaction, payment_id="pi_1")
            assert emulator_task_names(settings) == [], "nothing reaches Cloud Tasks before the relay"
            with pytest.raises(OrderNotFound):
                await tasks.status("ord_committed")
            summary = await tasks.relay()
            assert (summary.relayed, summary.created, summary.exists, summary.refused) == (1, len(tasks.kinds), 0, 0)
            assert (await tasks.relay()).relayed == 0, "a relayed row is never relayed again"
            status = await tasks.status("ord_committed")
            assert status["status"] == "paid" and {t["state"] for t in status["tasks"]} == {"scheduled"}
            assert tasks.stores.orders.get_order("ord_committed").charge_id == "pi_1"  # type: ignore[union-attr]
            return [r.name for r in pending], len(tasks.kinds)

    names, kinds = run(scenario())
    assert sorted(emulator_task_names(settings)) == sorted(names) and len(names) == kinds
    assert shop.counts() == OutboxCounts(0, 1, 0)


AT_ONCE = 50


def test_fifty_checkouts_in_fifty_open_transactions_then_one_relay(settings: Settings, shop: ShopDatabase) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    async def scenario() -> int:
        engine = create_async_engine(shop.url, pool_size=AT_ONCE, max_overflow=0)
        all_open = asyncio.Barrier(AT_ONCE)

        async def checkout(tasks: AsyncOrderTasks, n: int) -> None:
            async with AsyncSession(engine) as session, session.begin():
                await tasks.schedule(order(f"ord_at_once_{n}"), transaction=session)
                await all_open.wait()        # every transaction is open before any commits

        try:
            async with AsyncOrderTasks.from_settings(settings) as tasks:
                async with asyncio.timeout(120):
                    await asyncio.gather(*(checkout(tasks, n) for n in range(AT_ONCE)))
                assert emulator_task_names(settings) == []
                summary = await tasks.relay()
                kinds = len(tasks.kinds)
                assert (summary.relayed, summary.created, summary.exists, summary.pending, summary.refused) == (
                    AT_ONCE, AT_ONCE * kinds, 0, 0, 0)
                return kinds
        finally:
            await engine.dispose()

    kinds = run(scenario())
    names = Counter(emulator_task_names(settings))
    assert len(names) == AT_ONCE * kinds and set(names.values()) == {1}
    assert shop.counts() == OutboxCounts(0, AT_ONCE, 0)


@pytest.mark.parametrize("death", ["raises", "cancelled"])
def test_a_relay_that_dies_after_cloud_tasks_is_repeated_harmlessly(settings: Settings, shop: ShopDatabase,
                                                                   death: str) -> None:
    async def scenario() -> int:
        async with AsyncOrderTasks.from_settings(settings) as tasks:
            async with async_transaction(shop, "psycopg-async") as transaction:
                await tasks.schedule(order("ord_dies"), transaction=transaction)
            await relay_that_dies(tasks, shop, death)
            assert shop.counts().waiting == 1, "the claim's transaction never committed"
            summary = await tasks.relay()
            assert (summary.relayed, summary.refused) == (1, 0)
            assert {t["state"] for t in (await tasks.status("ord_dies"))["tasks"]} == {"scheduled"}
            return len(tasks.kinds)

    kinds = run(scenario())
    names = Counter(emulator_task_names(settings))
    assert len(names) == kinds and set(names.values()) == {1}
    assert shop.counts() == OutboxCounts(0, 1, 0)


async def relay_that_dies(tasks: AsyncOrderTasks, shop: ShopDatabase, death: str) -> None:
    """A relay whose row reaches our store and Cloud Tasks, and which then raises (or is
    cancelled) before it marks the row relayed."""
    scheduled = asyncio.Event()

    async def schedule_then_die(snapshot: dict[str, Any], payment_id: str | None = None) -> list[Any]:
        await tasks.schedule(snapshot, payment_id=payment_id)
        scheduled.set()
        if death == "raises":
            raise RuntimeError("the relay died before marking the row")
        await asyncio.Event().wait()        # hangs until cancelled
        return []

    database = open_database(shop.url)
    try:
        relay = asyncio.create_task(AsyncRelay(outbox_for("postgresql"), database, schedule_then_die,
                                               tasks.records.clock).run())
        await scheduled.wait()
        if death == "cancelled":
            relay.cancel()
        with pytest.raises(RuntimeError if death == "raises" else asyncio.CancelledError):
            await relay
    finally:
        database.close()


ORDERS = 200
RELAYS = 3


def test_four_async_relays_at_once_create_every_task_of_200_orders_once(settings: Settings,
                                                                        shop: ShopDatabase) -> None:
    import psycopg

    async def commit_orders() -> int:
        async with AsyncOrderTasks.from_settings(settings) as tasks, \
                await psycopg.AsyncConnection.connect(libpq_url(shop)) as conn:
            for n in range(ORDERS):
                await tasks.schedule(order(f"ord_many_{n}"), transaction=conn)
                await conn.commit()
            return len(tasks.kinds)

    async def relay_at_once() -> list[Any]:
        relayers = [AsyncOrderTasks.from_settings(settings) for _ in range(RELAYS)]
        try:
            # three objects (a connection each), and a second call on the first (it waits its turn)
            return list(await asyncio.gather(*(each.relay(limit=ORDERS) for each in relayers),
                                             relayers[0].relay(limit=ORDERS)))
        finally:
            for each in relayers:
                await each.close()

    kinds = run(commit_orders())
    summaries = run(relay_at_once())
    totals = [sum(getattr(s, field) for s in summaries) for field in ("relayed", "created", "exists", "pending",
                                                                        "refused")]
    assert totals == [ORDERS, ORDERS * kinds, 0, 0, 0], summaries
    names = Counter(emulator_task_names(settings))
    assert len(names) == ORDERS * kinds and set(names.values()) == {1}
    assert shop.counts() == OutboxCounts(0, ORDERS, 0)


# --- refusals: before any Cloud Tasks call, so no emulator ---------------------------------------

@pytest.fixture
def offline(tmp_path: Path, shop: ShopDatabase) -> Settings:
    """Settings whose Cloud Tasks answers nothing (a refusal never reaches it)."""
    return make_settings(tmp_path, "127.0.0.1:9", store={"outbox_url": shop.url})


def test_an_async_engine_is_refused_saying_what_to_pass(offline: Settings, shop: ShopDatabase) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    async def scenario() -> None:
        engine = create_async_engine(shop.url)
        try:
            async with AsyncOrderTasks.from_settings(offline) as tasks:
                with pytest.raises(UnsupportedTransaction, match=r"AsyncEngine.*async with engine.begin\(\)"):
                    await tasks.schedule(order("ord_engine"), transaction=engine)
        finally:
            await engine.dispose()

    run(scenario())
    assert shop.counts().waiting == 0


def test_autocommit_async_connections_are_refused(offline: Settings, shop: ShopDatabase) -> None:
    import psycopg
    from sqlalchemy.ext.asyncio import create_async_engine

    async def scenario() -> None:
        engine = create_async_engine(shop.url, isolation_level="AUTOCOMMIT")
        async with AsyncOrderTasks.from_settings(offline) as tasks:
            try:
                async with engine.connect() as conn:
                    with pytest.raises(UnsupportedTransaction, match="AUTOCOMMIT"):
                        await tasks.schedule(order("ord_auto"), transaction=conn)
            finally:
                await engine.dispose()
            async with await psycopg.AsyncConnection.connect(libpq_url(shop), autocommit=True) as raw:
                with pytest.raises(UnsupportedTransaction, match=r"async with conn.transaction\(\)"):
                    await tasks.schedule(order("ord_auto"), transaction=raw)
                async with raw.transaction():       # inside one, it is taken
                    await tasks.schedule(order("ord_auto"), transaction=raw)

    run(scenario())
    assert shop.counts().waiting == 1


def test_the_synchronous_schedule_sends_asyncio_connections_to_async_order_tasks(offline: Settings,
                                                                                 shop: ShopDatabase) -> None:
    import psycopg

    async def scenario(tasks: OrderTasks) -> None:
        async with async_transaction(shop, "sqlalchemy-async-session") as session:
            with pytest.raises(UnsupportedTransaction, match=r"await AsyncOrderTasks.schedule"):
                tasks.schedule(order("ord_sync"), transaction=session)
        async with await psycopg.AsyncConnection.connect(libpq_url(shop)) as raw:
            with pytest.raises(UnsupportedTransaction, match=r"asyncio AsyncConnection"):
                tasks.schedule(order("ord_sync"), transaction=raw)

    with OrderTasks.from_settings(offline) as tasks:
        run(scenario(tasks))
    assert shop.counts().waiting == 0


def test_a_synchronous_connection_in_async_code_is_written_through_too(offline: Settings,
                                                                       shop: ShopDatabase) -> None:
    async def scenario() -> None:
        async with AsyncOrderTasks.from_settings(offline) as tasks:
            with shop.transaction("sqlalchemy-connection") as conn:
                await tasks.schedule(order("ord_sync_conn"), transaction=conn)

    run(scenario())
    assert shop.counts().waiting == 1


def test_relay_without_an_outbox_database_says_how_to_name_one(tmp_path: Path) -> None:
    from ordertasks import ConfigurationError

    async def scenario() -> None:
        async with AsyncOrderTasks.from_settings(make_settings(tmp_path, "127.0.0.1:9")) as tasks:
            with pytest.raises(ConfigurationError, match="ORDERTASKS_OUTBOX_URL"):
                await tasks.relay()

    run(scenario())
