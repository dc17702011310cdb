"""``ordertasks console [--host 127.0.0.1] [--port 8088]`` and the backend flags.

Binds to loopback by default: the console changes production state and has no login of
its own (it acts with the operator's credentials), so it is for the operator's own machine
(reach it from elsewhere through an SSH tunnel). With another ``--host`` the Host-header
allow-list is off and a warning is printed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from werkzeug.serving import make_server

from ordertasks.producer.backend_flags import CREDENTIALS_HINT, add_backend_flags, is_missing_credentials, settings_with_flags
from ordertasks.infra.console.app import create_app

log = logging.getLogger("ordertasks.console")
NO_CREDENTIALS_PAGE = ("No application-default credentials were found on this machine, so the console cannot "
                       "read Firestore or Cloud Tasks.")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="ordertasks console", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8088, help="port to listen on (default 8088)")
    add_backend_flags(p)
    return p.parse_args(argv)


def build_app(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The app over the configured backends, or the page that says what is missing."""
    from ordertasks.infra.config import Settings
    from ordertasks.infra.console.context import console_from_settings, describe

    settings = settings_with_flags(Settings.from_env(), args)
    try:
        return create_app(console_from_settings(settings), host=args.host)
    except Exception as exc:
        if not is_missing_credentials(exc):
            raise
        print(f"ordertasks console: {CREDENTIALS_HINT}", file=sys.stderr)
        return create_app(None, host=args.host, problem=NO_CREDENTIALS_PAGE,
                          label=f"{describe(settings, settings.catalog())} · not signed in")


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the console until interrupted."""
    args = parse(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"ordertasks console: listening on {args.host}: anyone who can reach it acts with your credentials",
              file=sys.stderr)
    app = build_app(args)
    server = make_server(args.host, args.port, app, threaded=True)
    print(f"ordertasks console on http://{args.host}:{args.port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
