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
    args = parser.parse_args(argv)
    from ordertasks.handlers.config import Settings
    from ordertasks.handlers.wiring import check_startup

    check_startup(Settings.from_env())   # a bad setting or catalog stops the process here, before it listens
    import functions_framework
    from functions_framework._http import create_server

    source = str(Path(__file__).with_name("main.py"))
    app = functions_framework.create_app(target="handle_task", source=source)  # type: ignore[no-untyped-call]
    create_server(app, args.debug).run(args.host, args.port)  # type: ignore[no-untyped-call]
    return 0
