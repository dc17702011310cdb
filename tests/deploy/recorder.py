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

APIS = ("IAM", "SERVICEUSAGE", "CLOUDFUNCTIONS", "CLOUDSCHEDULER", "FIRESTORE", "STORAGE",
        "CLOUDRESOURCEMANAGER", "CLOUDTASKS", "ARTIFACTREGISTRY", "CLOUDBUILD", "SECRETMANAGER", "LOGGING",
        "MONITORING")
RUN_HOST = "run.recorder.invalid"
"""gcloud run prefixes the region to the endpoint's host (``europe-west1-run.recorder.invalid``),
which no resolver knows: gcloud reaches it through the recorder acting as its HTTP proxy."""
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
    operations: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """Base URL for the endpoint overrides."""
        return f"http://127.0.0.1:{self.port}/"

    def env(self) -> dict[str, str]:
        """Endpoint overrides sending every API gcloud may call here (Cloud Run's through the proxy)."""
        return {**{f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{api}": self.url for api in APIS},
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN": f"http://{RUN_HOST}/", "CLOUDSDK_PROXY_TYPE": "http",
                "CLOUDSDK_PROXY_ADDRESS": "127.0.0.1", "CLOUDSDK_PROXY_PORT": str(self.port)}

    def changes(self) -> list[Request]:
        """Requests that would change something (not GET), in order."""
        return [r for r in self.requests if r.method != "GET" and not r.path.endswith(":getIamPolicy")]

    def find(self, method: str, pattern: str) -> list[Request]:
        """Requests with ``method`` whose path matches the regular expression ``pattern``."""
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]


def _operation_name(path: str, number: int) -> str:
    scope = re.search(r"(projects/[^/]+/(?:locations|databases)/[^/]+)", path)
    return f"{scope.group(1)}/operations/op-{number}" if scope else f"operations/op-{number}"


def _created(path: str, body: Any, query: dict[str, list[str]]) -> dict[str, Any]:
    """The resource an operation reports: the request body, named as the API would name it."""
    resource = dict(body) if isinstance(body, dict) else {}
    ids = [values[0] for key, values in query.items() if key.endswith("Id") and values]
    if "name" not in resource and ids:
        resource["name"] = re.sub(r"^/v\d\w*/", "", path) + "/" + ids[0]
    return resource


def _operation(recorder: Recorder, path: str, body: Any, query: dict[str, list[str]]) -> dict[str, Any]:
    name = _operation_name(path, len(recorder.operations) + 1)
    operation: dict[str, Any] = {"name": name, "done": True, "response": _created(path, body, query)}
    if path.startswith("/v2/"):  # only Cloud Functions speaks v2 among the APIs sent here
        # gcloud functions waits on the deploy "stages" it finds in the metadata.
        stages = [{"name": n, "state": "COMPLETE"} for n in ("BUILD", "SERVICE")]
        operation["metadata"] = {"@type": FUNCTIONS_METADATA, "stages": stages}
    if "/collectionGroups/" in path and path.endswith("/indexes"):
        # gcloud firestore prints the index the (async) operation builds.
        operation["done"] = False
        operation.pop("response")
        operation["metadata"] = {"@type": "type.googleapis.com/google.firestore.admin.v1.IndexOperationMetadata",
                                 "index": path.split("/v1/", 1)[-1] + "/idx-1", "state": "PROCESSING"}
    recorder.operations[name] = operation
    version = path.split("/")[1]
    if operation.get("response", {}).get("name") and version.startswith("v"):
        # Once created, a resource can be read back, as gcloud does after some operations.
        recorder.canned.setdefault(f"/{version}/{operation['response']['name']}", operation["response"])
    return operation


KNATIVE_SERVICES = re.compile(r"^/apis/serving\.knative\.dev/v1/namespaces/([^/]+)/services(?:/([^/]+))?$")


def _knative(recorder: Recorder, method: str, path: str, body: Any) -> tuple[int, Any] | None:
    """Cloud Run's v1 (Knative) API: a created or replaced service is stored and reported Ready."""
    match = KNATIVE_SERVICES.match(path)
    if not match or method not in ("POST", "PUT") or not isinstance(body, dict):
        return None
    name = body.get("metadata", {}).get("name") or match.group(2)
    service = {**body, "status": {"observedGeneration": 1, "latestReadyRevisionName": f"{name}-00001-abc",
                                  "latestCreatedRevisionName": f"{name}-00001-abc",
                                  "url": f"https://{name}-abc123-ew.a.run.app",
                                  "address": {"url": f"https://{name}-abc123-ew.a.run.app"},
                                  "conditions": [{"type": t, "status": "True"}
                                                 for t in ("Ready", "ConfigurationsReady", "RoutesReady")]}}
    service["metadata"] = {**body.get("metadata", {}), "generation": 1}
    recorder.canned[f"/apis/serving.knative.dev/v1/namespaces/{match.group(1)}/services/{name}"] = service
    return 200, service


BUILD_METADATA = "type.googleapis.com/google.devtools.cloudbuild.v1.BuildOperationMetadata"


def _submitted_build(recorder: Recorder, path: str) -> dict[str, Any]:
    """Cloud Run's ``builds:submit``: a build that has already succeeded, and its operation."""
    project, region = path.split("/")[3], path.split("/")[5]
    build = {"id": "build-1", "projectId": project, "name": f"projects/{project}/locations/{region}/builds/build-1",
             "logUrl": "https://console.cloud.google.com/cloud-build/builds/build-1", "status": "SUCCESS",
             "results": {"images": [{"digest": "sha256:" + "0" * 64}]}}
    recorder.operations[f"projects/{project}/locations/{region}/operations/build-1"] = {
        "name": f"projects/{project}/locations/{region}/operations/build-1", "done": True,
        "response": {"@type": "type.googleapis.com/google.devtools.cloudbuild.v1.Build", **build}}
    return {"buildOperation": {"name": f"projects/{project}/locations/{region}/operations/build-1",
                               "metadata": {"@type": BUILD_METADATA, "build": build}}}


def _fixed_answer(recorder: Recorder, method: str, path: str, body: Any) -> tuple[int, Any] | None:
    """Answers that do not depend on stored state; ``None`` when the generic rules apply."""
    if path.endswith("/builds:submit"):
        return 200, _submitted_build(recorder, path)
    if re.fullmatch(r"/upload/storage/v1/b/[^/]+/o", path):
        # gcloud checks the stored size against its local archive.
        return 200, {"kind": "storage#object", "bucket": path.split("/")[5], "name": "source.zip",
                     "size": str(len(body["zip"])), "generation": "1"}
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
        # Cloud Build answers in resource-name form; gcloud extracts the email from it.
        project = path.split("/")[3]
        return 200, {"serviceAccountEmail": f"projects/{project}/serviceAccounts/123456789-compute@developer.gserviceaccount.com"}
    if method == "GET" and path.endswith("-compute@developer.gserviceaccount.com"):
        return 200, {"email": path.rsplit("/", 1)[1], "disabled": False}  # Cloud Build's account, enabled
    if method == "GET" and re.fullmatch(r"/v1/projects/[^/]+/services/[a-z.]+", path):
        return 200, {"name": path[4:], "state": "ENABLED"}
    if method == "GET" and re.fullmatch(r"/v1/projects/[^/]+", path):
        return 200, {"projectId": path.rsplit("/", 1)[1], "projectNumber": "123456789"}
    if method == "GET" and re.fullmatch(r"/storage/v1/b/[^/]+/storageLayout", path):
        return 200, {"kind": "storage#storageLayout", "bucket": path.split("/")[4], "locationType": "region"}
    if method == "GET" and re.fullmatch(r"/storage/v1/b/[^/]+/(o|managedFolders|folders)", path):
        return 200, {"items": []}
    if method == "GET" and re.fullmatch(r"/v\d/projects/[^/]+/(dashboards|alertPolicies)|.*/collectionGroups/-/indexes", path):
        return 200, {}  # an empty list
    return None


def answer(recorder: Recorder, method: str, path: str, body: Any,
           query: dict[str, list[str]] | None = None) -> tuple[int, Any]:
    """Status and JSON body for one request."""
    if (method == "GET" or path.endswith(":getIamPolicy")) and path in recorder.canned:
        return 200, recorder.canned[path]
    operation = recorder.operations.get(re.sub(r"^/v\d\w*/", "", path))
    if method == "GET" and operation:
        return 200, operation
    fixed = _fixed_answer(recorder, method, path, body) or _knative(recorder, method, path, body)
    if fixed:
        return fixed
    if method == "GET" and "/operations/" not in path:
        return 404, {"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}}
    if path.startswith("/storage/"):
        return (204, None) if method == "DELETE" else (200, {**(body or {}), "kind": "storage#bucket"})
    return 200, _operation(recorder, path, body, query or {})


class _Handler(BaseHTTPRequestHandler):
    recorder: Recorder

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = _decode(raw, parts.path, self.headers.get("Content-Type", ""))
        with self.recorder.lock:
            self.recorder.requests.append(Request(self.command, parts.path, parse_qs(parts.query), body))
        status, payload = answer(self.recorder, self.command, parts.path, body, parse_qs(parts.query))
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

    def log_message(self, *args: Any) -> None:
        """Quiet: the test reads ``requests`` instead."""


def _media(raw: bytes, content_type: str) -> bytes:
    """The file in a GCS multipart upload (metadata part, then media part), or ``raw`` itself."""
    boundary = re.search(r"""boundary=["']?([^"';]+)""", content_type)
    if not content_type.startswith("multipart/") or not boundary:
        return raw
    parts = raw.split(b"--" + boundary.group(1).encode())
    media = parts[2] if len(parts) > 3 else raw
    separator = b"\r\n\r\n" if b"\r\n\r\n" in media else b"\n\n"
    data = media.split(separator, 1)[1]
    return data[:-2] if data.endswith(b"\r\n") else data[:-1] if data.endswith(b"\n") else data


def _decode(raw: bytes, path: str, content_type: str = "") -> Any:
    if path.startswith("/upload/"):
        return {"zip": _media(raw, content_type)}
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
