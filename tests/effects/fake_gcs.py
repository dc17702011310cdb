"""A tiny stand-in for the GCS JSON API, enough for ``GcsBlobStore`` over a real socket.

Serves multipart upload (with ``ifGenerationMatch=0``), media download and bucket get, the
way the real API answers them (412 on a failed precondition, JSON error bodies). Tests can
queue error statuses that the next object requests get before normal handling resumes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class StoredObject:
    """An object as the fake keeps it."""

    data: bytes
    content_type: str
    generation: int


@dataclass
class FakeGcs:
    """Buckets' objects, the queue of injected failures and the server's endpoint."""

    objects: dict[tuple[str, str], StoredObject] = field(default_factory=dict)
    fail_next: list[int] = field(default_factory=list)
    endpoint: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self) -> Any:
        """A real ``google.cloud.storage.Client`` pointed at this fake, without credentials."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project="test", credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                              client_options={"api_endpoint": self.endpoint})


def _error(status: int, message: str) -> tuple[int, str, bytes]:
    body = {"error": {"code": status, "message": message, "errors": [{"message": message}]}}
    return status, "application/json", json.dumps(body).encode()


def _upload(fake: FakeGcs, bucket: str, query: dict[str, list[str]], headers: Any,
            body: bytes) -> tuple[int, str, bytes]:
    envelope = f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + body
    metadata_part, media_part = message_from_bytes(envelope, policy=policy.HTTP).iter_parts()
    name = json.loads(metadata_part.get_content())["name"]
    with fake.lock:
        if query.get("ifGenerationMatch") == ["0"] and (bucket, name) in fake.objects:
            return _error(412, "At least one of the pre-conditions you specified did not hold.")
        generation = len(fake.objects) + 1
        data = media_part.get_payload(decode=True)
        assert isinstance(data, bytes)
        fake.objects[(bucket, name)] = StoredObject(data, media_part.get_content_type(), generation)
    resource = {"kind": "storage#object", "bucket": bucket, "name": name, "generation": str(generation)}
    return 200, "application/json", json.dumps(resource).encode()


def _download(fake: FakeGcs, bucket: str, name: str) -> tuple[int, str, bytes]:
    stored = fake.objects.get((bucket, name))
    if stored is None:
        return _error(404, f"No such object: {bucket}/{name}")
    return 200, stored.content_type, stored.data


def _route(fake: FakeGcs, method: str, target: str, headers: Any, body: bytes) -> tuple[int, str, bytes]:
    url = urlsplit(target)
    # Failures hit object requests only: the client also fetches bucket metadata in a
    # background thread (for its observability cache), at a moment tests cannot predict.
    if fake.fail_next and url.path.startswith(("/upload/", "/download/")):
        return _error(fake.fail_next.pop(0), "injected failure")
    parts, query = [unquote(p) for p in url.path.split("/")], parse_qs(url.query)
    if method == "POST" and parts[1:5] == ["upload", "storage", "v1", "b"] and parts[6:] == ["o"]:
        return _upload(fake, parts[5], query, headers, body)
    if method == "GET" and parts[1:5] == ["download", "storage", "v1", "b"] and parts[6:7] == ["o"]:
        return _download(fake, parts[5], "/".join(parts[7:]))
    if method == "GET" and parts[1:4] == ["storage", "v1", "b"] and len(parts) == 5:
        return 200, "application/json", json.dumps({"kind": "storage#bucket", "name": parts[4]}).encode()
    return _error(404, f"fake GCS does not serve {method} {url.path}")


def _handler(fake: FakeGcs) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, content_type, payload = _route(fake, self.command, self.path, self.headers, body)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
            pass

    return Handler


@contextmanager
def running_fake_gcs() -> Iterator[FakeGcs]:
    """Serve a fresh fake on a free loopback port for the duration of the block."""
    fake = FakeGcs()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
