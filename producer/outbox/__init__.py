"""The transactional outbox: an order's effects written in the shop's own database transaction.

    with engine.begin() as conn:                      # the shop's transaction
        conn.execute(insert(orders).values(...))      # the shop's own order row
        tasks.schedule(order, transaction=conn)       # + ordertasks_outbox rows, same transaction
    tasks.relay()                                     # after commit: store + Cloud Tasks, once

``schedule(order, transaction=…)`` (``outbox.writer``) writes the order snapshot and the effects
it owes through the caller's open connection (``outbox.connections``: SQLAlchemy, psycopg 3,
sqlite3, Django) and touches nothing else, so a rollback leaves no trace anywhere and a commit
makes the effects owed. The relay (``outbox.relay``) moves committed rows to our store and
Cloud Tasks, each order exactly once in effect: ``OrderTasks.relay()``, ``ordertasks relay``,
and ``run_maintenance``'s reconcile when an outbox database is named. ``AsyncOrderTasks`` has
both as coroutines over the same rows and statements (``writer.schedule_in_async``,
``async_relay``).

    ports.py        Sql, AsyncSql, Database, ShopOutbox (the contract), Claim
    rows.py         the tables' names and what a row holds
    steps.py        statements written once, run on a Sql or an AsyncSql
    statements.py   the statements both dialects share
    postgres.py     PostgreSQL: jsonb, timestamptz, claims by FOR UPDATE SKIP LOCKED
    sqlite.py       SQLite: claims by lease, one relay per database
    backends.py     dialect -> backend, the DDL migrations run
    connections.py  the caller's connection borrowed; the relay's own opened from a URL
    writer.py       schedule(order, transaction=…), sync and async
    relay.py        Relay, RelaySummary, the URL (ORDERTASKS_OUTBOX_URL or the catalog)
    async_relay.py  AsyncRelay: claims on a worker thread, Cloud Tasks on the event loop
    cli.py          ordertasks outbox init|sql|status, ordertasks relay
"""

from ordertasks.producer.outbox.backends import create_tables, outbox_ddl, outbox_drop, outbox_for
from ordertasks.producer.outbox.connections import borrowed, open_database
from ordertasks.producer.outbox.ports import Claim, Database, ShopOutbox, Sql, UnsupportedTransaction
from ordertasks.producer.outbox.rows import EFFECTS_TABLE, ORDERS_TABLE, OutboxCounts, OutboxRow, OwedEffect

__all__ = ["EFFECTS_TABLE", "ORDERS_TABLE", "Claim", "Database", "OutboxCounts", "OutboxRow", "OwedEffect", "ShopOutbox",
           "Sql", "UnsupportedTransaction", "borrowed", "create_tables", "open_database", "outbox_ddl", "outbox_drop",
           "outbox_for"]
