"""``ordertasks handler``: serve ``handle_task`` under functions-framework (gunicorn), as
``functions-framework --target handle_task`` would, configured from ``ORDERTASKS_*``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``--host/--port`` and serve until stopped."""
    parser = argparse.ArgumentParser(prog="ordertasks handler", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--debug", action="store_true", help="Flask's development server instead of gunicorn")
    parser.add_argument("--workers", type=worker_count, default=None,
                        help="gunicorn worker processes (default: functions-framework's, 1 unless its WORKERS "
                             "variable says otherwise); each runs functions-framework's threads")
    args = parser.parse_args(argv)
    from ordertasks.handlers.config import Settings
    from ordertasks.handlers.wiring import check_startup

    check_startup(Settings.from_env())   # a bad setting or catalog stops the process here, before it listens
    import functions_framework
    from functions_framework._http import create_server

    source = str(Path(__file__).with_name("main.py"))
    app = functions_framework.create_app(target="handle_task", source=source)  # type: ignore[no-untyped-call]
    # Only a given --workers overrides functions-framework's own default (and its WORKERS).
    options = {} if args.workers is None else {"workers": args.workers}
    create_server(app, args.debug, **options).run(args.host, args.port)  # type: ignore[no-untyped-call]
    return 0


def worker_count(text: str) -> int:
    """A ``--workers`` value: a whole number of processes, at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value
