"""``ordertasks checkout``: serve the checkout API with werkzeug's threaded WSGI server.

Good for local use and tests (a thread per connection, so a slow client holds only its own). In
the cloud, ``ordertasks deploy`` runs ``gunicorn 'ordertasks.producer.serve:app_from_env()'`` with
the worker that reads each request whole before a thread takes it
(``ordertasks.functions.serve.WholeRequestWorker``; the plan's ``GUNICORN`` arguments).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from flask import Flask
from werkzeug.serving import make_server

from ordertasks.handlers.config import Settings
from ordertasks.producer.checkout import create_app

log = logging.getLogger("ordertasks.producer.serve")


def app_from_env() -> Flask:
    """The app configured from the environment (for gunicorn)."""
    return create_app(Settings.from_env())


def main(argv: Sequence[str] | None = None) -> int:
    """``ordertasks checkout [--host H] [--port P]``: serve until interrupted."""
    parser = argparse.ArgumentParser(prog="ordertasks checkout", description="serve the checkout API")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    args = parser.parse_args(list(argv or []))
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level)
    server = make_server(args.host, args.port, create_app(settings), threaded=True)
    print(f"checkout API on http://{args.host}:{server.server_port} (backend={settings.backend})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
