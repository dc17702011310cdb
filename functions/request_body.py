"""Read a delivery's body only after the caller is authenticated, and never past a limit.

Cloud Tasks bodies are at most 1 MiB, so the handler reads at most ``limit`` bytes straight
from the WSGI input, in chunks: a 200 MB POST costs 64 KiB of buffer, not 200 MB. A request
whose ``Content-Length`` is over the limit is refused without reading a byte.

functions-framework reads the whole body after every response (an ``after_request`` hook
calling ``request.get_data()``), which would buffer everything a refused caller sent. So
once the handler is done with the input it swaps in an empty one; the server discards the
rest (werkzeug closes the connection; gunicorn's gthread worker, which Cloud Functions runs,
drains at most 64 KiB, then closes).

Under ``ordertasks handler`` the input is already in memory: its worker
(``functions.serve.WholeRequestWorker``) reads a body before the handler runs, at most one
byte past the app's ``MAX_CONTENT_LENGTH`` (set to the handler's limit) and within 10 s, and
reads none of one whose ``Content-Length`` is over it; it closes the connection after the
answer when bytes were left unread.
"""

from __future__ import annotations

import io
from typing import IO

import flask

CHUNK = 64 * 1024


def _read_at_most(stream: IO[bytes], size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(min(CHUNK, remaining))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def take_body(request: flask.Request, limit: int) -> bytes | None:
    """The body if it is at most ``limit`` bytes, else ``None``; later readers see an empty body."""
    environ = request.environ
    length = request.content_length
    if length is not None and length > limit:
        body = None
    elif length is not None:
        body = _read_at_most(environ["wsgi.input"], length)
    elif "wsgi.input_terminated" in environ:       # chunked: the server marks the end
        read = _read_at_most(environ["wsgi.input"], limit + 1)
        body = read if len(read) <= limit else None
    else:
        body = b""                                  # no length and no end marker: read nothing (as werkzeug does)
    discard_body(request)
    return body


def discard_body(request: flask.Request) -> None:
    """Leave the rest of the body unread: whoever reads the request next sees it empty."""
    request.environ["wsgi.input"] = io.BytesIO()
    request.environ["CONTENT_LENGTH"] = "0"
    request.environ.pop("wsgi.input_terminated", None)
