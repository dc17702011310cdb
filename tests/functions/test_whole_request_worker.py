"""The pieces of ``WholeRequestWorker`` (``functions/serve.py``) on their own: how much of a
body it reads, and the WSGI environ it hands the app. The servers that run it are tested in
``tests/security/test_slow_clients_*.py`` and ``test_chunked_checkout_body.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from ordertasks.functions.serve import DEFAULT_BODY_LIMIT, WholeRequestApp, body_limit, read_body, wsgi_environ


def scope(headers: list[tuple[bytes, bytes]], raw_path: bytes = b"/a%2Fb%C3%A9") -> dict[str, Any]:
    """An ASGI HTTP scope as uvicorn builds it."""
    return {"type": "http", "method": "POST", "path": raw_path.decode(), "raw_path": raw_path,
            "query_string": b"x=1", "http_version": "1.1", "scheme": "http", "headers": headers,
            "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 5555)}


def receiver(*chunks: bytes) -> Callable[[], Any]:
    """An ASGI ``receive`` that yields ``chunks`` as a body, then a disconnect."""
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    queue = iter([*messages, {"type": "http.disconnect"}])

    async def receive() -> Any:
        return next(queue)
    return receive


def test_a_content_length_over_the_limit_is_not_read() -> None:
    def never() -> Any:
        raise AssertionError("read a body whose Content-Length is over the limit")
    assert asyncio.run(read_body(scope([(b"content-length", b"101")]), never, 100)) == (b"", False)


def test_a_chunked_body_is_read_one_byte_past_the_limit() -> None:
    body = asyncio.run(read_body(scope([]), receiver(b"x" * 60, b"y" * 60, b"z" * 60), 100))
    assert body == (b"x" * 60 + b"y" * 41, False)


def test_a_body_within_the_limit_is_read_whole() -> None:
    assert asyncio.run(read_body(scope([]), receiver(b"ab", b"cd"), 100)) == (b"abcd", True)


def test_a_client_that_leaves_mid_body_is_not_served() -> None:
    async def left() -> Any:
        return {"type": "http.disconnect"}
    assert asyncio.run(read_body(scope([]), left, 100)) is None


def test_the_environ_is_what_gunicorn_would_build() -> None:
    environ = wsgi_environ(scope([(b"content-type", b"application/json"), (b"x-forwarded_for", b"6.6.6.6"),
                                  (b"accept", b"a"), (b"accept", b"b")]), b"{}")
    assert environ["PATH_INFO"] == "/a/b\xc3\xa9"       # percent-decoded bytes as latin-1 (PEP 3333)
    assert (environ["CONTENT_TYPE"], environ["HTTP_ACCEPT"]) == ("application/json", "a,b")
    assert environ["QUERY_STRING"] == "x=1"
    assert "HTTP_X_FORWARDED_FOR" not in environ          # an underscore name must not pose as a dash name
    assert environ["wsgi.input"].read() == b"{}" and environ["wsgi.input_terminated"] is True
    assert (environ["SERVER_PORT"], environ["REMOTE_ADDR"]) == ("8080", "127.0.0.1")


def test_the_limit_is_the_apps_own() -> None:
    app = Flask("limited")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    assert body_limit(app) == 64 * 1024
    assert body_limit(lambda environ, start: []) == DEFAULT_BODY_LIMIT


def test_a_body_left_unread_closes_the_connection() -> None:
    def refuse(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        start("413 Content Too Large", [("Content-Type", "text/plain")])
        return [b"too large"]
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
    app = WholeRequestApp(refuse, threads=1)
    asyncio.run(app(scope([(b"content-length", str(2 * DEFAULT_BODY_LIMIT).encode())]), receiver(), send))
    assert sent[0]["status"] == 413 and (b"connection", b"close") in sent[0]["headers"]
    assert sent[1]["body"] == b"too large"
