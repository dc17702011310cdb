"""gRPC transport: ``google.cloud.tasks.v2.CloudTasks``, ``google.cloud.location.Locations`` and
``google.longrunning.Operations`` (GetOperation, for the batch methods' operations).

No generated stubs and no second implementation: each RPC is transcoded to the REST call
Google's own HTTP mapping (the ``google.api.http`` rule of the method) defines for it, and
run through :func:`infra.emulator.api.invoke`, the same entry point the REST routes use.
A request message becomes proto3 JSON (``MessageToDict``); its path fields fill the URL
template, its body field (or all remaining fields, for ``body: "*"``) becomes the JSON body,
the rest becomes the query string.  The JSON answer is parsed back into the response
message.  So validation, messages and behaviour are identical on both transports, and an
:class:`RpcError` becomes the gRPC status of the same canonical code with the same message.
The calls are served by :mod:`infra.emulator.h2grpc` on the emulator's own event loop.

A malformed request message is INVALID_ARGUMENT naming the method.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from google.cloud import tasks_v2
from google.cloud.location import locations_pb2
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2, json_format, message
from google.protobuf.message import DecodeError

from ordertasks.infra.emulator import api, wire_proto
from ordertasks.infra.emulator.buffer_proto import BufferTaskRequest, BufferTaskResponse
from ordertasks.infra.emulator.errors import RpcError
from ordertasks.infra.emulator.h2grpc import Call
from ordertasks.infra.emulator.service import TasksService

log = logging.getLogger("ordertasks.emulator.grpc")
TASKS_SERVICE = "google.cloud.tasks.v2.CloudTasks"
LOCATIONS_SERVICE = "google.cloud.location.Locations"
OPERATIONS_SERVICE = "google.longrunning.Operations"
_FIELD = re.compile(r"\{([a-z_.]+)\}")
Json = dict[str, Any]


@dataclass(frozen=True)
class Rule:
    """One RPC and its HTTP mapping: request/response classes, verb, path template, body field."""

    request: type[message.Message]
    response: type[message.Message]
    method: str
    template: str  # fields in braces, proto names: "{parent}/queues", "{queue.name}"
    body: str | None = None  # None: no body; "*": every field not in the path; else one field
    optional: tuple[str, ...] = ()  # path fields that may be empty (BufferTask's task_id)


def _pb(proto_plus_type: Any) -> type[message.Message]:
    return proto_plus_type.pb()  # type: ignore[no-any-return]


T = tasks_v2
TASKS_RULES: dict[str, Rule] = {
    "ListQueues": Rule(_pb(T.ListQueuesRequest), _pb(T.ListQueuesResponse), "GET", "{parent}/queues"),
    "GetQueue": Rule(_pb(T.GetQueueRequest), _pb(T.Queue), "GET", "{name}"),
    "CreateQueue": Rule(_pb(T.CreateQueueRequest), _pb(T.Queue), "POST", "{parent}/queues", "queue"),
    "UpdateQueue": Rule(_pb(T.UpdateQueueRequest), _pb(T.Queue), "PATCH", "{queue.name}", "queue"),
    "DeleteQueue": Rule(_pb(T.DeleteQueueRequest), empty_pb2.Empty, "DELETE", "{name}"),
    "PurgeQueue": Rule(_pb(T.PurgeQueueRequest), _pb(T.Queue), "POST", "{name}:purge", "*"),
    "PauseQueue": Rule(_pb(T.PauseQueueRequest), _pb(T.Queue), "POST", "{name}:pause", "*"),
    "ResumeQueue": Rule(_pb(T.ResumeQueueRequest), _pb(T.Queue), "POST", "{name}:resume", "*"),
    "GetIamPolicy": Rule(iam_policy_pb2.GetIamPolicyRequest, policy_pb2.Policy, "POST", "{resource}:getIamPolicy", "*"),
    "SetIamPolicy": Rule(iam_policy_pb2.SetIamPolicyRequest, policy_pb2.Policy, "POST", "{resource}:setIamPolicy", "*"),
    "TestIamPermissions": Rule(iam_policy_pb2.TestIamPermissionsRequest, iam_policy_pb2.TestIamPermissionsResponse,
                               "POST", "{resource}:testIamPermissions", "*"),
    "ListTasks": Rule(_pb(T.ListTasksRequest), _pb(T.ListTasksResponse), "GET", "{parent}/tasks"),
    "GetTask": Rule(_pb(T.GetTaskRequest), _pb(T.Task), "GET", "{name}"),
    "CreateTask": Rule(_pb(T.CreateTaskRequest), _pb(T.Task), "POST", "{parent}/tasks", "*"),
    "DeleteTask": Rule(_pb(T.DeleteTaskRequest), empty_pb2.Empty, "DELETE", "{name}"),
    "RunTask": Rule(_pb(T.RunTaskRequest), _pb(T.Task), "POST", "{name}:run", "*"),
    "BufferTask": Rule(BufferTaskRequest, BufferTaskResponse, "POST", "{queue}/tasks/{task_id}:buffer", "*",
                       optional=("task_id",)),
    "BatchCreateTasks": Rule(_pb(T.BatchCreateTasksRequest), operations_pb2.Operation, "POST",
                             "{parent}/tasks:batchCreate", "*"),
    "BatchDeleteTasks": Rule(_pb(T.BatchDeleteTasksRequest), operations_pb2.Operation, "POST",
                             "{parent}/tasks:batchDelete", "*"),
    "GetCmekConfig": Rule(_pb(T.GetCmekConfigRequest), _pb(T.CmekConfig), "GET", "{name}"),
    "UpdateCmekConfig": Rule(_pb(T.UpdateCmekConfigRequest), _pb(T.CmekConfig), "PATCH", "{cmek_config.name}",
                             "cmek_config"),
}
LOCATIONS_RULES: dict[str, Rule] = {
    "ListLocations": Rule(locations_pb2.ListLocationsRequest, locations_pb2.ListLocationsResponse, "GET",
                          "{name}/locations"),
    "GetLocation": Rule(locations_pb2.GetLocationRequest, locations_pb2.Location, "GET", "{name}"),
}
OPERATIONS_RULES: dict[str, Rule] = {
    "GetOperation": Rule(operations_pb2.GetOperationRequest, operations_pb2.Operation, "GET", "{name}"),
}
SERVICES = ((TASKS_SERVICE, TASKS_RULES), (LOCATIONS_SERVICE, LOCATIONS_RULES), (OPERATIONS_SERVICE, OPERATIONS_RULES))


@dataclass
class RestCall:
    """An RPC request transcoded to REST: verb, path after ``/v2/``, query and JSON body."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


def _lookup(fields: Json, dotted: str) -> Any:
    value: Any = fields
    for part in dotted.split("."):
        value = value.get(_camel(part), "") if isinstance(value, dict) else ""
    return value


def _camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def transcode(rule: Rule, fields: Json) -> RestCall:
    """The REST call equivalent to an RPC request given as proto3 JSON ``fields``."""
    path_fields = _FIELD.findall(rule.template)
    for field in path_fields:
        if not _lookup(fields, field) and field not in rule.optional:
            raise RpcError("INVALID_ARGUMENT", f"{field} is required")
    path = _FIELD.sub(lambda m: str(_lookup(fields, m.group(1))), rule.template)
    # A path field nested in the body field (UpdateQueue's queue.name) stays in the body.
    in_path = {_camel(f) for f in path_fields if "." not in f}
    rest = {k: v for k, v in fields.items() if k not in in_path}
    if rule.body == "*":
        return RestCall(rule.method, path, {}, rest)
    body = rest.pop(_camel(rule.body), {}) if rule.body else {}
    query = {k: _query_value(v) for k, v in rest.items() if not isinstance(v, (dict, list))}
    return RestCall(rule.method, path, query, body)


def _decode(rule: Rule, name: str, raw: bytes) -> Json:
    request = rule.request()
    try:
        request.ParseFromString(raw)
        return wire_proto.request_json(request)
    except (DecodeError, ValueError, json_format.Error) as exc:
        # ValueError / json_format.Error: e.g. a Duration or Timestamp outside protobuf's range.
        raise RpcError("INVALID_ARGUMENT", f"{name}: the request is not a valid {request.DESCRIPTOR.full_name} "
                                           f"message ({str(exc)[:200]})") from None


def _encode(rule: Rule, answer: Json) -> bytes:
    return wire_proto.parse_answer(answer, rule.response()).SerializeToString()  # type: ignore[no-any-return]


def make_call(service: TasksService, name: str, rule: Rule, latency_ms: float = 0.0) -> Call:
    """One RPC as a coroutine from request bytes to answer bytes; failures raise :class:`RpcError`."""
    async def call(raw: bytes) -> bytes:
        try:
            request = transcode(rule, _decode(rule, name, raw))
            answer = await api.invoke(service, request.method, request.path, request.query, request.body,
                                      latency_ms=latency_ms, from_proto=True)
            return _encode(rule, answer)
        except RpcError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug must answer INTERNAL, never kill the call silently
            log.exception("%s failed", name)
            raise RpcError("INTERNAL", f"{name}: internal emulator error: {type(exc).__name__}: {exc}") from None
    return call


def calls(service: TasksService, latency_ms: float = 0.0) -> dict[bytes, Call]:
    """Every RPC of every service, keyed by its HTTP/2 path (``/google.cloud.tasks.v2.CloudTasks/CreateTask``)."""
    return {f"/{service_name}/{name}".encode(): make_call(service, name, rule, latency_ms)
            for service_name, rules in SERVICES for name, rule in rules.items()}
