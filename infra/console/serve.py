"""``ordertasks console [--host 127.0.0.1] [--port 8088] [--allowed-host NAME]`` and the backend flags.

Binds to loopback by default: the console changes production state and has no login of
its own (it acts with the operator's credentials), so it is for the operator's own machine
(reach it from elsewhere through an SSH tunnel). Whatever ``--host`` says, it answers only
requests whose Host header is a loopback name, the ``--host`` itself, or a name given with
``--allowed-host`` (repeatable), so a page reached by DNS rebinding gets nothing. With a
``--host`` that is not loopback a warning is printed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from werkzeug.serving import make_server

from ordertasks.producer.backend_flags import CREDENTIALS_HINT, add_backend_flags, is_missing_credentials, reading_settings
from ordertasks.producer.terminal import plain_help
from ordertasks.infra.console.app import create_app
from ordertasks.infra.console.security import WILDCARD_BINDS, host_name, is_loopback

log = logging.getLogger("ordertasks.console")
NO_CREDENTIALS_PAGE = ("No application-default credentials were found on this machine, so the console cannot "
                       "read Firestore or Cloud Tasks.")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="ordertasks console", description=plain_help(__doc__),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8088, help="port to listen on (default 8088)")
    p.add_argument("--allowed-host", "--allow-host", dest="allowed_hosts", action="append", default=[],
                   metavar="NAME", help="also answer requests whose Host is NAME, e.g. the machine's name when "
                   "--host 0.0.0.0 (repeatable; loopback names and --host always are)")
    add_backend_flags(p, init=True)
    return p.parse_args(argv)


def build_app(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The app over the configured backends, or the page that says what is missing."""
    from ordertasks.infra.console.context import console_from_settings, describe

    settings = reading_settings(args)
    hosts = {"host": args.host, "allowed_hosts": args.allowed_hosts}
    try:
        return create_app(console_from_settings(settings), traces_url=settings.tracing.traces_url, **hosts)
    except Exception as exc:
        if not is_missing_credentials(exc):
            raise
        print(f"ordertasks console: {CREDENTIALS_HINT}", file=sys.stderr)
        return create_app(None, problem=NO_CREDENTIALS_PAGE,
                          label=f"{describe(settings, settings.catalog())} · not signed in", **hosts)


def exposure_warning(host: str, allowed_hosts: Sequence[str]) -> str | None:
    """What to tell an operator who binds beyond loopback, or ``None``."""
    name = host_name(host)
    if is_loopback(name):
        return None
    if name in WILDCARD_BINDS and not allowed_hosts:
        return (f"listening on {host}: anyone who can reach it acts with your credentials; it answers only "
                "loopback Host names until you add the names people use with --allowed-host NAME")
    return f"listening on {host}: anyone who can reach it acts with your credentials"


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the console until interrupted."""
    args = parse(argv)
    warning = exposure_warning(args.host, args.allowed_hosts)
    if warning:
        print(f"ordertasks console: {warning}", file=sys.stderr)
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
