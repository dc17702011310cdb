"""``ordertasks handler``: serve ``handle_task`` under functions-framework (gunicorn), as
``functions-framework --target handle_task`` would, configured from ``ORDERTASKS_*``.

It also holds the gunicorn worker both of our servers run (this handler, and the checkout as
``ordertasks deploy`` runs it: ``--worker-class=ordertasks.functions.serve.WholeRequestWorker``).
gunicorn's own workers read a request in the thread that then runs the app, so a client that
sends its headers or body a byte a second holds a thread for as long as it likes, and a few of
them stop the server. In ``WholeRequestWorker`` uvicorn's event loop reads each request whole
first — its head at most ``HEAD_BYTES``, its body at most one byte past the app's own limit,
both within ``READ_SECONDS`` — and only then does one of ``--threads`` threads run the app: a
slow client costs a socket and a timer, never a thread.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]

DESCRIPTION = ("serve handle_task under functions-framework (gunicorn), as `functions-framework --target "
               "handle_task` would, configured from ORDERTASKS_*")
READ_SECONDS = 10.0
"""How long a client has to send one whole request, head and body, from connecting or from its
previous answer. Our requests are small (an order, a task reference); a client still sending
after this is stalling, and is disconnected however steadily it trickles bytes."""
HEAD_BYTES = 16 * 1024
"""The most of an unfinished request head (request line and headers) buffered for a client (h11's
limit): a head still unfinished past it is a 400."""
DEFAULT_BODY_LIMIT = 1024 * 1024
"""The body limit for an app that declares none (Flask's ``MAX_CONTENT_LENGTH`` unset)."""
WORKER_TIMEOUT = 30
"""gunicorn restarts a worker whose event loop has not reported for this long."""


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``--host/--port`` and serve until stopped."""
    parser = argparse.ArgumentParser(prog="ordertasks handler", description=DESCRIPTION)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port to listen on (default 8081)")
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

    from ordertasks.functions.main import MAX_BODY

    source = str(Path(__file__).with_name("main.py"))
    app = functions_framework.create_app(target="handle_task", source=source)  # type: ignore[no-untyped-call]
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY   # so the worker buffers at most one byte more
    create_server(app, args.debug, **server_options(args)).run(args.host, args.port)  # type: ignore[no-untyped-call]
    return 0


def server_options(args: argparse.Namespace) -> dict[str, Any]:
    """gunicorn settings over functions-framework's: our worker, a heartbeat, and ``--workers`` when given."""
    if args.debug:
        return {}                                   # Flask's development server takes none of them
    options: dict[str, Any] = {"worker_class": WholeRequestWorker, "timeout": WORKER_TIMEOUT}
    if args.workers is not None:                    # else functions-framework's default (and its WORKERS)
        options["workers"] = args.workers
    return options


def worker_count(text: str) -> int:
    """A ``--workers`` value: a whole number of processes, at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


class ReadDeadlineProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with one deadline per request: ``READ_SECONDS`` from the
    connection (or the previous answer) to the request's last body byte. uvicorn's own
    keep-alive timer restarts on every byte, so alone it never ends a trickle."""

    _read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock on the first request."""
        super().connection_made(transport)
        self._restart_read_deadline()

    def handle_events(self) -> None:
        """Stop the clock once the request being answered has arrived whole."""
        super().handle_events()
        cycle = self.cycle
        if cycle is not None and not cycle.more_body and not cycle.response_complete:
            self._stop_read_deadline()

    def on_response_complete(self) -> None:
        """Start the clock on the next request (before uvicorn parses any it already holds)."""
        self._restart_read_deadline()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the timer with the connection."""
        self._stop_read_deadline()
        super().connection_lost(exc)

    def _restart_read_deadline(self) -> None:
        self._stop_read_deadline()
        self._read_deadline = self.loop.call_later(READ_SECONDS, self.transport.close)

    def _stop_read_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None


class WholeRequestApp:
    """An ASGI app running a WSGI app: it reads each request's body in the event loop, then
    calls the WSGI app on one of ``threads`` threads with the body in memory.

    It reads at most one byte past the app's limit (``MAX_CONTENT_LENGTH``): the app still sees
    that a chunked body is over and answers its own 413. A ``Content-Length`` over the limit is
    not read at all; the app refuses it from the header (both of ours do), and the connection
    closes after the answer.
    """

    def __init__(self, app: WSGIApp, threads: int) -> None:
        self.app = app
        self.limit = body_limit(app)
        self.pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="wsgi")

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
        """Serve one HTTP request (the worker turns lifespan events off)."""
        read = await read_body(scope, receive, self.limit)
        if read is None:
            return                                  # the client left (or ran out of time) mid-body
        body, whole = read
        loop = asyncio.get_running_loop()
        status, headers, content = await loop.run_in_executor(self.pool, call_wsgi, self.app,
                                                              wsgi_environ(scope, body))
        if not whole:                               # unread bytes are still on the socket
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


class WholeRequestWorker(UvicornWorker):  # type: ignore[misc]  # uvicorn-worker ships no types
    """The gunicorn worker: uvicorn reads (``ReadDeadlineProtocol``), ``WholeRequestApp`` buffers,
    ``--threads`` threads run the WSGI app gunicorn loaded."""

    CONFIG_KWARGS = {"loop": "asyncio", "http": ReadDeadlineProtocol, "ws": "none", "lifespan": "off",
                     "h11_max_incomplete_event_size": HEAD_BYTES, "server_header": False}
    wsgi: Any   # gunicorn's loaded app; uvicorn serves whatever it holds after load_wsgi

    def load_wsgi(self) -> None:
        """Load the app as gunicorn does, then put it behind ``WholeRequestApp``."""
        super().load_wsgi()
        self.wsgi = WholeRequestApp(self.wsgi, self.cfg.threads)


def body_limit(app: object) -> int:
    """The most body bytes ``app`` accepts: Flask's ``MAX_CONTENT_LENGTH``, else ``DEFAULT_BODY_LIMIT``."""
    config = getattr(app, "config", None) or {}
    return int(config.get("MAX_CONTENT_LENGTH") or DEFAULT_BODY_LIMIT)


def declared_length(scope: dict[str, Any]) -> int | None:
    """The request's ``Content-Length`` (h11 has checked that it is one number), if it has one."""
    values = [value for name, value in scope["headers"] if name.lower() == b"content-length"]
    return int(values[0]) if values else None


async def read_body(scope: dict[str, Any], receive: Callable[[], Any], limit: int) -> tuple[bytes, bool] | None:
    """``(body, True)``; ``(at most limit + 1 bytes, False)`` past the limit; ``None`` if the client left."""
    length = declared_length(scope)
    if length is not None and length > limit:
        return b"", False
    body = bytearray()
    while len(body) <= limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body), True
    return bytes(body[:limit + 1]), False


def wsgi_environ(scope: dict[str, Any], body: bytes) -> dict[str, Any]:
    """The PEP 3333 environ of an ASGI HTTP request whose body is ``body``, as gunicorn builds it."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"], "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(scope.get("raw_path") or scope["path"].encode()).decode("latin-1"),
        "QUERY_STRING": scope["query_string"].decode("latin-1"), "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
        "SERVER_NAME": str(server[0]), "SERVER_PORT": str(server[1]),
        "REMOTE_ADDR": str(client[0]), "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0), "wsgi.url_scheme": scope.get("scheme", "http"), "wsgi.input": io.BytesIO(body),
        # The body is all there (or cut one byte past the limit): reading to its end is safe, chunked or not.
        "wsgi.input_terminated": True, "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    for name, value in scope["headers"]:
        key = name.decode("latin-1").upper()
        if "_" in key:
            continue          # as gunicorn does: X-Forwarded_For must not pose as X-Forwarded-For
        key = key.replace("-", "_")
        key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"
        text = value.decode("latin-1")
        environ[key] = f"{environ[key]},{text}" if key in environ else text
    return environ


def call_wsgi(app: WSGIApp, environ: dict[str, Any]) -> Answer:
    """Run ``app`` on ``environ`` (on a pool thread): its status, headers and whole body."""
    started: list[Any] = []
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        started[:] = [status, headers]
        return written.append

    result = app(environ, start_response)
    try:
        written.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started
    encoded = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    return int(status.split(" ", 1)[0]), encoded, b"".join(written)
