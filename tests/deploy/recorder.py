"""A local HTTP server that stands in for Google's APIs and records what gcloud asks of them.

gcloud is pointed here with ``CLOUDSDK_API_ENDPOINT_OVERRIDES_<API>``. Answers are the least
a real API would say so gcloud carries on: 404 for an unknown resource, a finished
long-running operation for every change, an empty IAM policy, and whatever a test put in
``canned``. Every request is kept in ``requests`` for the test to assert on.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

APIS = ("IAM", "SERVICEUSAGE", "CLOUDFUNCTIONS", "RUN", "CLOUDSCHEDULER", "FIRESTORE", "STORAGE",
        "CLOUDRESOURCEMANAGER", "CLOUDTASKS", "ARTIFACTREGISTRY", "CLOUDBUILD")
FUNCTIONS_METADATA = "type.googleapis.com/google.cloud.functions.v2.OperationMetadata"


@dataclass
class Request:
    """One recorded API call."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any

    def __repr__(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Recorder:
    """The server's state: recorded requests and canned GET answers keyed by path."""

    port: int = 0
    requests: list[Request] = field(default_factory=list)
    canned: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """Base URL for the endpoint overrides."""
        return f"http://127.0.0.1:{self.port}/"

    def env(self) -> dict[str, str]:
        """Endpoint overrides sending every API gcloud may call here."""
        return {f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{api}": self.url for api in APIS}

    def changes(self) -> list[Request]:
        """Requests that would change something (not GET), in order."""
        return [r for r in self.requests if r.method != "GET" and not r.path.endswith(":getIamPolicy")]

    def find(self, method: str, pattern: str) -> list[Request]:
        """Requests with ``method`` whose path matches the regular expression ``pattern``."""
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]


def _operation_name(path: str) -> str:
    scope = re.search(r"(projects/[^/]+/(?:locations|databases)/[^/]+)", path)
    return f"{scope.group(1)}/operations/op-1" if scope else "operations/op-1"


def _operation(path: str, body: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {"name": _operation_name(path), "done": True,
                                 "response": body if isinstance(body, dict) else {}}
    if path.startswith("/v2/"):  # only Cloud Functions speaks v2 among the APIs sent here
        # gcloud functions waits on the deploy "stages" it finds in the metadata.
        stages = [{"name": n, "state": "COMPLETE"} for n in ("BUILD", "SERVICE")]
        operation["metadata"] = {"@type": FUNCTIONS_METADATA, "stages": stages}
    return operation


def _fixed_answer(recorder: Recorder, method: str, path: str, body: Any) -> tuple[int, Any] | None:
    """Answers that do not depend on stored state; ``None`` when the generic rules apply."""
    if path.startswith("/upload/"):
        return 200, {}
    if path.endswith(":generateUploadUrl"):
        return 200, {"uploadUrl": f"{recorder.url}upload/source.zip",
                     "storageSource": {"bucket": "gcf-v2-uploads", "object": "source.zip"}}
    if method == "GET" and re.fullmatch(r"/storage/v1/b/[^/]+/iam", path):
        return 200, {"kind": "storage#policy", "bindings": [], "etag": "CAE="}
    if method == "PUT" and re.fullmatch(r"/storage/v1/b/[^/]+/iam", path):
        return 200, {**(body or {}), "kind": "storage#policy"}
    if path.endswith(":getIamPolicy"):
        return 200, {"bindings": [], "etag": "BwYAAAAAAAA=", "version": 1}
    if path.endswith(":setIamPolicy"):
        return 200, (body or {}).get("policy", {})
    if method == "GET" and path.endswith("/runtimes"):
        return 200, {"runtimes": [{"name": "python312", "stage": "GA", "environment": "GEN_2"}]}
    if method == "GET" and path.endswith("/defaultServiceAccount"):
        return 200, {"serviceAccountEmail": "build@example.iam.gserviceaccount.com"}
    if method == "GET" and re.fullmatch(r"/v1/projects/[^/]+/services/[a-z.]+", path):
        return 200, {"name": path[4:], "state": "ENABLED"}
    if method == "GET" and re.fullmatch(r"/v1/projects/[^/]+", path):
        return 200, {"projectId": path.rsplit("/", 1)[1], "projectNumber": "123456789"}
    if method == "GET" and re.fullmatch(r"/storage/v1/b/[^/]+/storageLayout", path):
        return 200, {"kind": "storage#storageLayout", "bucket": path.split("/")[4], "locationType": "region"}
    if method == "GET" and re.fullmatch(r"/storage/v1/b/[^/]+/(o|managedFolders|folders)", path):
        return 200, {"items": []}
    return None


def answer(recorder: Recorder, method: str, path: str, body: Any) -> tuple[int, Any]:
    """Status and JSON body for one request."""
    if (method == "GET" or path.endswith(":getIamPolicy")) and path in recorder.canned:
        return 200, recorder.canned[path]
    fixed = _fixed_answer(recorder, method, path, body)
    if fixed:
        return fixed
    if method == "GET" and "/operations/" not in path:
        return 404, {"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}}
    if path.startswith("/storage/"):
        return (204, None) if method == "DELETE" else (200, {**(body or {}), "kind": "storage#bucket"})
    return 200, _operation(path, body)


class _Handler(BaseHTTPRequestHandler):
    recorder: Recorder

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = _decode(raw, parts.path)
        with self.recorder.lock:
            self.recorder.requests.append(Request(self.command, parts.path, parse_qs(parts.query), body))
        status, payload = answer(self.recorder, self.command, parts.path, body)
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

    def log_message(self, *args: Any) -> None:
        """Quiet: the test reads ``requests`` instead."""


def _decode(raw: bytes, path: str) -> Any:
    if path.startswith("/upload/"):
        return {"zip": raw}
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {"raw": raw[:200].decode("latin-1")}


def serve() -> Iterator[Recorder]:
    """Run a recorder on a free loopback port until the generator is closed."""
    recorder = Recorder()
    handler = type("Handler", (_Handler,), {"recorder": recorder})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    recorder.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
