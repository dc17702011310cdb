"""``ordertasks outbox init|sql|status`` and ``ordertasks relay``.

    ordertasks outbox init --database-url URL      create the outbox tables (idempotent)
    ordertasks outbox sql --dialect postgresql     print the DDL, for a migration tool
    ordertasks outbox status --database-url URL    waiting / relayed / refused orders
    ordertasks relay [--database-url URL] [--limit N]

The URL defaults to ``ORDERTASKS_OUTBOX_URL`` (else the catalog's ``[outbox] database_url``).
``relay`` creates tasks with the same settings as the shop's own ``OrderTasks.from_env()``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ordertasks.handlers.config import Settings
from ordertasks.handlers.errors import ConfigurationError, DependencyUnavailable
from ordertasks.producer.backend_flags import add_backend_flags, settings_with_flags
from ordertasks.producer.outbox.backends import BACKENDS, create_tables, outbox_ddl, outbox_for
from ordertasks.producer.outbox.connections import open_database
from ordertasks.producer.outbox.relay import NO_URL, Relay, outbox_database_url


def _url(given: str | None, settings: Settings | None = None) -> str:
    url = given or outbox_database_url(settings or Settings.from_env())
    if not url:
        raise ConfigurationError(NO_URL)
    return url


def unavailable(command: str, exc: DependencyUnavailable) -> int:
    """One line on stderr, exit 1: the database could not be reached now."""
    print(f"ordertasks {command}: {exc}", file=sys.stderr)
    return 1


def outbox_main(argv: Sequence[str] | None = None) -> int:
    """``ordertasks outbox init|sql|status``."""
    try:
        return _outbox(argv)
    except DependencyUnavailable as exc:
        return unavailable("outbox", exc)


def _outbox(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="ordertasks outbox",
                                     description="The transactional outbox's tables in your own database.")
    parser.add_argument("action", choices=["init", "sql", "status"],
                        help="init: create the tables (idempotent); sql: print their DDL for a migration; "
                             "status: count waiting, relayed and refused orders")
    parser.add_argument("--database-url", help="the outbox database (default: ORDERTASKS_OUTBOX_URL)")
    parser.add_argument("--dialect", choices=sorted(BACKENDS), default="postgresql",
                        help="the SQL dialect sql prints (default postgresql)")
    args = parser.parse_args(list(argv or []))
    if args.action == "sql":
        print(";\n\n".join(outbox_ddl(args.dialect)) + ";")
        return 0
    database = open_database(_url(args.database_url))
    try:
        if args.action == "init":
            create_tables(database)
            print(f"outbox tables ready ({database.dialect})")
            return 0
        with database.transaction() as sql:
            counts = outbox_for(database.dialect).counts(sql)
        print(f"outbox: {counts.waiting} waiting, {counts.relayed} relayed, {counts.refused} refused")
        return 0
    finally:
        database.close()


def relay_main(argv: Sequence[str] | None = None) -> int:
    """``ordertasks relay``: exit 1 when a row was refused or a task is left pending."""
    try:
        return _relay(argv)
    except DependencyUnavailable as exc:
        return unavailable("relay", exc)


def _relay(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="ordertasks relay",
                                     description="Move committed transactional-outbox rows to the store and Cloud "
                                                 "Tasks, each order once.")
    parser.add_argument("--database-url", help="the outbox database (default: ORDERTASKS_OUTBOX_URL)")
    parser.add_argument("--limit", type=int, default=500, help="at most this many orders per run (default 500)")
    parser.add_argument("--batch", type=int, default=20, help="orders claimed at a time (default 20)")
    add_backend_flags(parser)
    args = parser.parse_args(list(argv or []))
    from ordertasks.producer.library import OrderTasks

    settings = settings_with_flags(Settings.from_env(), args)
    database = open_database(_url(args.database_url, settings))
    try:
        with OrderTasks.from_settings(settings) as tasks:
            summary = Relay(outbox_for(database.dialect), database, tasks.schedule, tasks.clock, args.batch).run(args.limit)
    finally:
        database.close()
    print(summary.line(), flush=True)
    return 1 if summary.refused or summary.pending else 0


if __name__ == "__main__":
    sys.exit(relay_main(sys.argv[1:]))
