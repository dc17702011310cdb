"""The ``ShopOutbox`` contract (``producer.outbox.ports``) over both backends: PostgreSQL on a
private cluster (``tests/outbox/postgres.py``) and SQLite in a file.

Rows are written through a ``Database`` transaction here, as a shop's would be; which
connection type borrows it is ``tests/outbox``'s concern.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from ordertasks.producer.outbox import (Database, OutboxRow, OwedEffect, ShopOutbox, create_tables, open_database,
                                        outbox_for)
from tests.contract.clock import T0, at
from tests.support.servers import wait_until
from tests.outbox.postgres import PostgresCluster, postgres_cluster  # noqa: F401 - the session fixture

DIALECTS = ["postgresql", "sqlite"]


@pytest.fixture(params=DIALECTS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shop.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.new_database()


@pytest.fixture
def database(url: str) -> Iterator[Database]:
    opened = open_database(url)
    create_tables(opened)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def outbox(database: Database) -> ShopOutbox:
    return outbox_for(database.dialect)


def row(order_id: str, seconds: float = 0, total: str = "10.00") -> OutboxRow:
    effects = (OwedEffect("request_review", f"q/tasks/{order_id}-r", at(seconds + 7 * 86400)),     # by kind
               OwedEffect("send_confirmation", f"q/tasks/{order_id}-c", at(seconds), at(seconds + 600)))
    return OutboxRow(order_id, {"placed_at": T0.isoformat(), "totals": {"total": total}}, "pi_1", at(seconds), effects)


def add(database: Database, outbox: ShopOutbox, *rows: OutboxRow) -> None:
    with database.transaction() as sql:
        for each in rows:
            assert outbox.add(sql, each) is None


def waiting(database: Database, outbox: ShopOutbox) -> int:
    with database.transaction() as sql:
        return int(outbox.counts(sql).waiting)


def test_creating_the_tables_twice_changes_nothing(database: Database, outbox: ShopOutbox) -> None:
    add(database, outbox, row("ord_1"))
    create_tables(database)
    assert waiting(database, outbox) == 1


def test_a_rolled_back_add_leaves_nothing(database: Database, outbox: ShopOutbox) -> None:
    with pytest.raises(RuntimeError), database.transaction() as sql:
        outbox.add(sql, row("ord_rolled_back"))
        raise RuntimeError("the shop's transaction fails after the add")
    assert waiting(database, outbox) == 0
    with outbox.claim(database, 10, at(0)) as claim:
        assert claim.rows == []


def test_an_order_id_already_there_is_left_as_it_was(database: Database, outbox: ShopOutbox) -> None:
    add(database, outbox, row("ord_1"))
    with database.transaction() as sql:
        assert outbox.add(sql, row("ord_1", total="99.00")) == row("ord_1").snapshot
    with outbox.claim(database, 10, at(0)) as claim:
        assert [r.snapshot for r in claim.rows] == [row("ord_1").snapshot]


def test_a_claim_hands_out_the_oldest_rows_whole_and_settles_them(database: Database, outbox: ShopOutbox) -> None:
    add(database, outbox, row("ord_c", 2), row("ord_a", 0), row("ord_b", 1))
    with outbox.claim(database, 2, at(10)) as claim:
        assert claim.rows == [row("ord_a", 0), row("ord_b", 1)]
        claim.relayed("ord_a", at(11))
        claim.refused("ord_b", "OrderConflict: other content")
    with database.transaction() as sql:
        counts = outbox.counts(sql)
    assert (counts.waiting, counts.relayed, counts.refused) == (1, 1, 1)
    with outbox.claim(database, 10, at(12)) as claim:
        assert [r.order_id for r in claim.rows] == ["ord_c"]     # neither the relayed nor the refused one
    assert waiting(database, outbox) == 1                          # reported neither: waiting again


def test_a_claim_that_raises_marks_nothing(database: Database, outbox: ShopOutbox) -> None:
    add(database, outbox, row("ord_1"))
    with pytest.raises(RuntimeError), outbox.claim(database, 10, at(1)) as claim:
        claim.relayed("ord_1", at(1))
        raise RuntimeError("the store is down")
    assert waiting(database, outbox) == 1
    with outbox.claim(database, 10, at(2)) as claim:
        assert [r.order_id for r in claim.rows] == ["ord_1"]


def test_two_relays_never_hold_the_same_row(url: str, database: Database, outbox: ShopOutbox) -> None:
    add(database, outbox, *(row(f"ord_{n}", n) for n in range(5)))
    other = open_database(url)
    try:
        with outbox.claim(database, 3, at(10)) as first, outbox.claim(other, 10, at(10)) as second:
            assert [r.order_id for r in first.rows] == ["ord_0", "ord_1", "ord_2"]
            assert [r.order_id for r in second.rows] == ["ord_3", "ord_4"]
    finally:
        other.close()


def test_a_relay_that_dies_holding_a_claim_loses_it(url: str, database: Database, outbox: ShopOutbox) -> None:
    add(database, outbox, row("ord_1"))
    dying = open_database(url)
    held = outbox.claim(dying, 10, at(0), lease_seconds=60)
    assert [r.order_id for r in held.__enter__().rows] == ["ord_1"]     # and never exits
    with outbox.claim(database, 10, at(1)) as claim:
        assert claim.rows == []
    if database.dialect == "postgresql":
        dying.close()                      # its connection gone: the row lock with it, once the server
        after = at(1)                      # has ended that connection's backend (a moment, not at once)
    else:
        after = at(61)                     # SQLite: once the lease has run out

    def relayed_by_another() -> bool:
        with outbox.claim(database, 10, after) as claim:
            for each in claim.rows:
                claim.relayed(each.order_id, after)
            return [r.order_id for r in claim.rows] == ["ord_1"]
    wait_until(relayed_by_another, timeout=10, what="the dead relay's row to be claimable again")
    assert waiting(database, outbox) == 0
    with suppress(Exception):              # PostgreSQL: its connection is gone; SQLite: nothing left to release
        held.__exit__(None, None, None)
    dying.close()
