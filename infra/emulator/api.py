"""HTTP layer: the Cloud Tasks v2 REST routes, plus health, the OIDC keys and discovery document.

Routes are matched by regular expressions on the path after ``/v2/`` because resource
names contain slashes and custom verbs (``queues/q:pause``) that aiohttp's router does not
split.  A JSON body naming a field its request message lacks is refused first, as Google's front
end does (:mod:`schema`).  Each handler gets a :class:`Call` and returns a JSON object; :class:`RpcError`
becomes a ``google.rpc.Status`` answer.  Enums are answered as numbers when the caller
asked for ``enum-encoding=int`` (the Python client) and as names otherwise (gcloud).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from google.cloud import tasks_v2
from google.iam.v1 import iam_policy_pb2
from google.protobuf.descriptor import Descriptor

from ordertasks.infra.emulator import batches, controls, errors, rules, schema, wire
from ordertasks.infra.emulator.buffer_proto import BufferTaskRequest
from ordertasks.infra.emulator.errors import RpcError, invalid
from ordertasks.infra.emulator.guard import HostGuard, guard_middleware
from ordertasks.infra.emulator.model import QueueState, View
from ordertasks.infra.emulator.oidc import TokenMinter
from ordertasks.infra.emulator.service import TasksService

log = logging.getLogger("ordertasks.emulator.api")
Json = dict[str, Any]
# Above the 1 MiB task limit (base64 and JSON included), so an oversize task still gets
# Cloud Tasks' own 400 naming the body; a request over this is 413 (RESOURCE_EXHAUSTED over
# gRPC, whose max receive message size it also is) without being read into memory.
MAX_REQUEST_BYTES = 4 * 1024 * 1024


@dataclass
class Call:
    """One API request, whichever transport carried it: path parameters, query, body and
    the caller's enum encoding.  gRPC requests arrive here transcoded to the same shape."""

    query: Mapping[str, str]
    params: dict[str, str]
    service: TasksService
    body: Any = None
    int_enums: bool = False

    @property
    def location(self) -> str:
        """``projects/P/locations/L`` after checking both ids."""
        rules.check_parent(self.params["p"], self.params["l"])
        return f"projects/{self.params['p']}/locations/{self.params['l']}"

    @property
    def queue_name(self) -> str:
        """Full queue name from the path, id checked."""
        rules.check_queue_id(self.params["q"], "name")
        return f"{self.location}/queues/{self.params['q']}"

    @property
    def task_name(self) -> str:
        """Full task name from the path, id checked."""
        rules.check_task_id(self.params["t"], "name")
        return f"{self.queue_name}/tasks/{self.params['t']}"

    def page(self) -> tuple[int, str]:
        """``pageSize`` and ``pageToken`` from the query."""
        size = wire.number(self.query.get("pageSize", "0") or "0", "pageSize")
        return size, self.query.get("pageToken", "")

    def view(self, source: Any) -> View:
        """``responseView`` (query value or body field); BASIC when absent."""
        if source in (None, "", 0, "0", "VIEW_UNSPECIFIED"):
            return View.BASIC
        return wire.parse_enum(View, source, "responseView")

    def json_body(self) -> Json:
        """The request body as a JSON object ({} when empty)."""
        if not isinstance(self.body, dict):
            raise invalid("request body must be a JSON object")
        return self.body


Handler = Callable[[Call], Awaitable[Json]]


# -- handlers ----------------------------------------------------------------------------

async def list_locations(call: Call) -> Json:
    """locations.list: the locations that hold queues (plus any asked about)."""
    project = call.params["p"]
    prefix = f"projects/{project}/locations/"
    ids = sorted({name[len(prefix):].split("/")[0] for name in call.service.queues if name.startswith(prefix)})
    return {"locations": [{"name": prefix + i, "locationId": i} for i in ids]}


async def get_location(call: Call) -> Json:
    """locations.get: every location exists in the emulator."""
    return {"name": call.location, "locationId": call.params["l"]}


async def list_queues(call: Call) -> Json:
    """queues.list with pageSize, pageToken and a ``state:`` filter."""
    size, token = call.page()
    queues, next_token = call.service.list_queues(call.location, size, token, call.query.get("filter", ""))
    out: Json = {"queues": [wire.queue_to_json(q, call.int_enums) for q in queues]}
    return {**out, "nextPageToken": next_token} if next_token else out


async def create_queue(call: Call) -> Json:
    """queues.create (body: the queue)."""
    queue = await call.service.create_queue(call.location, call.json_body())
    return wire.queue_to_json(queue, call.int_enums)


async def get_queue(call: Call) -> Json:
    """queues.get."""
    return wire.queue_to_json(call.service.queue(call.queue_name), call.int_enums)


# Output only in v2 (Cloud Tasks derives it from the rate): an update leaves it as it is,
# whether the mask names it or the body carries it.
OUTPUT_ONLY_PATHS = ("rateLimits.maxBurstSize",)


def _mask(call: Call) -> list[str]:
    return [_camel(p.strip()) for p in call.query.get("updateMask", "").split(",") if p.strip()]


async def patch_queue(call: Call) -> Json:
    """queues.patch with ``updateMask`` (camelCase or snake_case paths); output-only fields are ignored."""
    given = _mask(call)
    mask = [p for p in wire.expand_groups(given, "rateLimits") if p not in OUTPUT_ONLY_PATHS]
    name = call.queue_name
    if given and not mask and name in call.service.queues:
        return wire.queue_to_json(call.service.queue(name), call.int_enums)  # nothing it may change
    queue = await call.service.update_queue(name, wire.without_burst(call.json_body()), mask)
    return wire.queue_to_json(queue, call.int_enums)


async def delete_queue(call: Call) -> Json:
    """queues.delete."""
    await call.service.delete_queue(call.queue_name)
    return {}


async def queue_verb(call: Call) -> Json:
    """queues.pause / resume / purge."""
    name, verb = call.queue_name, call.params["verb"]
    if verb == "purge":
        queue = await call.service.purge_queue(name)
    else:
        queue = await call.service.set_state(name, QueueState.PAUSED if verb == "pause" else QueueState.RUNNING)
    return wire.queue_to_json(queue, call.int_enums)


async def list_tasks(call: Call) -> Json:
    """tasks.list with pageSize, pageToken and responseView."""
    size, token = call.page()
    view = call.view(call.query.get("responseView"))
    tasks, next_token = call.service.list_tasks(call.queue_name, size, token)
    out: Json = {"tasks": [wire.task_to_json(t, view, call.int_enums) for t in tasks]}
    return {**out, "nextPageToken": next_token} if next_token else out


async def create_task(call: Call) -> Json:
    """tasks.create (body: ``{"task": {...}, "responseView": ...}``)."""
    body = call.json_body()
    view = call.view(body.get("responseView"))
    task = await call.service.create_task(call.queue_name, body)
    return wire.task_to_json(task, view, call.int_enums)


async def get_task(call: Call) -> Json:
    """tasks.get with responseView."""
    view = call.view(call.query.get("responseView"))
    return wire.task_to_json(call.service.task(call.task_name), view, call.int_enums)


async def delete_task(call: Call) -> Json:
    """tasks.delete."""
    await call.service.delete_task(call.task_name)
    return {}


async def run_task(call: Call) -> Json:
    """tasks.run: dispatch now, answer with the task."""
    view = call.view(call.json_body().get("responseView"))
    return wire.task_to_json(call.service.run_task(call.task_name), view, call.int_enums)


async def iam_verb(call: Call) -> Json:
    """queues.getIamPolicy / setIamPolicy / testIamPermissions."""
    name, verb = call.queue_name, call.params["iam"]
    if verb == "getIamPolicy":
        call.json_body()
        return call.service.get_iam_policy(name)
    if verb == "setIamPolicy":
        return await call.service.set_iam_policy(name, call.json_body())
    return call.service.test_iam_permissions(name, call.json_body())


async def buffer_task(call: Call) -> Json:
    """tasks.buffer: ``…/tasks/ID:buffer`` or ``…/tasks:buffer`` (generated id); answers ``{"task": …}``."""
    task_id = call.params.get("t") or ""
    if task_id:
        rules.check_task_id(task_id, "taskId")
    task = await call.service.buffer_task(call.queue_name, task_id, call.json_body())
    return {"task": wire.task_to_json(task, View.BASIC, call.int_enums)}


async def batch_create_tasks(call: Call) -> Json:
    """tasks.batchCreate: a finished long-running operation (see :mod:`batches`)."""
    return await batches.batch_create(call.service, call.queue_name, call.json_body())


async def batch_delete_tasks(call: Call) -> Json:
    """tasks.batchDelete: a finished long-running operation (see :mod:`batches`)."""
    return await batches.batch_delete(call.service, call.queue_name, call.json_body())


async def get_cmek_config(call: Call) -> Json:
    """locations.getCmekConfig: stored per location, never used (see :mod:`cmek`)."""
    return call.service.cmek.get(call.location)


async def update_cmek_config(call: Call) -> Json:
    """locations.updateCmekConfig with ``updateMask``."""
    return await call.service.cmek.update(call.location, call.json_body(), _mask(call))


async def get_operation(call: Call) -> Json:
    """operations.get (google.longrunning.Operations/GetOperation)."""
    return call.service.operations.get(f"{call.location}/operations/{call.params['op']}")


def _camel(path: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), path)


_LOCATION = r"projects/(?P<p>[^/]+)/locations/(?P<l>[^/]+)"
_QUEUE = _LOCATION + r"/queues/(?P<q>[^/:]+)"
_TASK = _QUEUE + r"/tasks/(?P<t>[^/:]+)"
T = tasks_v2


def _body(proto_plus_type: Any) -> Descriptor:
    return proto_plus_type.pb().DESCRIPTOR  # type: ignore[no-any-return]


# (path pattern, HTTP method, handler, message of the JSON body: unknown names in it are refused)
ROUTES: list[tuple[re.Pattern[str], str, Handler, Descriptor | None]] = [
    (re.compile(p + "$"), method, handler, body) for p, method, handler, body in [
        (r"projects/(?P<p>[^/]+)/locations", "GET", list_locations, None),
        (_LOCATION, "GET", get_location, None),
        (_LOCATION + "/cmekConfig", "GET", get_cmek_config, None),
        (_LOCATION + "/cmekConfig", "PATCH", update_cmek_config, _body(T.CmekConfig)),
        (_LOCATION + r"/operations/(?P<op>[^/:]+)", "GET", get_operation, None),
        (_LOCATION + "/queues", "GET", list_queues, None),
        (_LOCATION + "/queues", "POST", create_queue, _body(T.Queue)),
        (_QUEUE, "GET", get_queue, None),
        (_QUEUE, "PATCH", patch_queue, _body(T.Queue)),
        (_QUEUE, "DELETE", delete_queue, None),
        (_QUEUE + r":(?P<verb>pause|resume|purge)", "POST", queue_verb, _body(T.PauseQueueRequest)),
        (_QUEUE + r":(?P<iam>getIamPolicy)", "POST", iam_verb, iam_policy_pb2.GetIamPolicyRequest.DESCRIPTOR),
        (_QUEUE + r":(?P<iam>setIamPolicy)", "POST", iam_verb, iam_policy_pb2.SetIamPolicyRequest.DESCRIPTOR),
        (_QUEUE + r":(?P<iam>testIamPermissions)", "POST", iam_verb,
         iam_policy_pb2.TestIamPermissionsRequest.DESCRIPTOR),
        (_QUEUE + r"/tasks/?(?P<t>[^/:]*):buffer", "POST", buffer_task, BufferTaskRequest.DESCRIPTOR),
        (_QUEUE + "/tasks:batchCreate", "POST", batch_create_tasks, _body(T.BatchCreateTasksRequest)),
        (_QUEUE + "/tasks:batchDelete", "POST", batch_delete_tasks, _body(T.BatchDeleteTasksRequest)),
        (_QUEUE + "/tasks", "GET", list_tasks, None),
        (_QUEUE + "/tasks", "POST", create_task, _body(T.CreateTaskRequest)),
        (_TASK, "GET", get_task, None),
        (_TASK, "DELETE", delete_task, None),
        (_TASK + ":run", "POST", run_task, _body(T.RunTaskRequest)),
    ]
]


def _route(method: str, path: str) -> tuple[Handler, dict[str, str], Descriptor | None]:
    for pattern, route_method, handler, body in ROUTES:
        if route_method == method and (match := pattern.match(path)):
            return handler, match.groupdict(), body
    raise RpcError("NOT_FOUND", f"no Cloud Tasks v2 method at {method} /v2/{path}")


async def _read_body(request: web.Request) -> Any:
    if (request.content_length or 0) > MAX_REQUEST_BYTES:
        raise errors.request_too_large(request.content_length, MAX_REQUEST_BYTES)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        # A chunked body: aiohttp stops reading at client_max_size.
        raise errors.request_too_large(None, MAX_REQUEST_BYTES) from None
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise invalid(f"Invalid JSON payload received: {str(exc)[:200]}") from None


async def invoke(service: TasksService, method: str, path: str, query: Mapping[str, str], body: Any,
                 int_enums: bool = False, latency_ms: float = 0.0, from_proto: bool = False) -> Json:
    """Run one API method given as REST (``method``, ``path`` after ``/v2/``): the single entry
    point both transports use.  ``latency_ms`` (``--inject-latency-ms``) delays the call first,
    to model the network to the real service.  ``from_proto``: ``body`` was made from a parsed
    protobuf message (gRPC), so it names only fields the message has, by their JSON names, and
    the REST body checks have nothing to find.  Raises :class:`RpcError`."""
    if latency_ms > 0:
        await asyncio.sleep(latency_ms / 1000)
    handler, params, body_message = _route(method, path)
    if not from_proto:
        schema.check_known(body, body_message)
        body = schema.with_json_names(body, body_message)
    return await handler(Call(query, params, service, body, int_enums))


def asks_int_enums(query: Mapping[str, str]) -> bool:
    """True when a REST caller asked for enums as numbers (``$alt=json;enum-encoding=int``)."""
    alt = query.get("$alt", "") + ";" + query.get("alt", "")
    return "enum-encoding=int" in alt


def make_api_handler(service: TasksService, latency_ms: float = 0.0) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler for everything under ``/v2/``."""
    async def handle(request: web.Request) -> web.Response:
        try:
            body = await _read_body(request)
            answer = await invoke(service, request.method, request.match_info["path"], request.query, body,
                                  asks_int_enums(request.query), latency_ms)
            return web.json_response(answer)
        except RpcError as exc:
            return web.json_response(exc.to_json(), status=exc.http_status)
        except Exception as exc:  # noqa: BLE001 - a bug answers a google.rpc.Status, never a bare 500 page
            log.exception("%s %s failed", request.method, request.path)
            error = RpcError("INTERNAL", f"internal emulator error: {type(exc).__name__}: {str(exc)[:200]}")
            return web.json_response(error.to_json(), status=error.http_status)
    return handle


JWKS_PATH = "/oauth2/v3/certs"
DISCOVERY = "/.well-known/openid-configuration"


def discovery_paths(issuer: str) -> list[str]:
    """Where the OIDC discovery document is served: at the root, and under the issuer's path when
    ``--issuer`` names one (``http://127.0.0.1:8123/oidc`` -> ``/oidc/.well-known/…``), since a
    verifier looks for it at ``ISSUER`` + ``/.well-known/openid-configuration``."""
    issuer_path = urllib.parse.urlsplit(issuer).path.rstrip("/")
    return [DISCOVERY] + ([issuer_path + DISCOVERY] if issuer_path else [])


def build_app(service: TasksService, minter: TokenMinter, latency_ms: float = 0.0,
              guard: HostGuard | None = None, in_flight: controls.InFlight = lambda: 0) -> web.Application:
    """The aiohttp application: API, test-suite controls, ``/healthz``, the OIDC key sets and discovery."""
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[guard_middleware(guard or HostGuard("127.0.0.1"))])
    controls.add_routes(app, service, in_flight)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def jwks(_: web.Request) -> web.Response:
        return web.json_response(minter.jwks(), headers={"Cache-Control": "public, max-age=300"})

    async def pem_certs(_: web.Request) -> web.Response:
        return web.json_response(minter.pem_certs(), headers={"Cache-Control": "public, max-age=300"})

    async def discovery(request: web.Request) -> web.Response:
        base = f"{request.scheme}://{request.host}"
        return web.json_response(minter.discovery(base + JWKS_PATH), headers={"Cache-Control": "public, max-age=300"})

    app.router.add_get("/healthz", healthz)
    app.router.add_get(JWKS_PATH, jwks)
    app.router.add_get("/oauth2/v1/certs", pem_certs)
    for path in discovery_paths(minter.issuer):
        app.router.add_get(path, discovery)
    app.router.add_route("*", "/v2/{path:.*}", make_api_handler(service, latency_ms))
    return app
