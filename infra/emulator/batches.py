"""BatchCreateTasks and BatchDeleteTasks: each item goes through CreateTask or DeleteTask, and
the answer is a finished long-running operation (see :mod:`operations`).

Limits and partial failure, as the v2 reference states them:

- at most :data:`MAX_CREATES` (100) requests per BatchCreateTasks and :data:`MAX_DELETES`
  (1000) names per BatchDeleteTasks; every sub-request's ``parent`` must be the batch's queue
  (an empty one is taken as it).  A batch that breaks these, or whose queue does not exist,
  is refused whole, before any item runs;
- otherwise every item is tried.  One that fails (a bad task, a name taken or existing too
  recently, a task not found) does not stop the others: its index and ``google.rpc.Status``
  go to ``metadata.failedRequests``, state PARTIALLY_SUCCEEDED; with none failed the state is
  SUCCEEDED.  When no item succeeded the operation carries ``error`` ABORTED "None of the
  requests succeeded, refer to …Metadata.failed_requests for individual error details" (the
  reference's words for BatchDeleteTasks, used for both) instead of a ``response``.

The items of one batch run concurrently, so their commits share the writer's transaction;
names are taken (or deleted) in request order, so a name twice in one batch fails the second time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from ordertasks.infra.emulator import wire, wire_scalars as ws
from ordertasks.infra.emulator.errors import RpcError, invalid
from ordertasks.infra.emulator.model import View
from ordertasks.infra.emulator.operations import packed
from ordertasks.infra.emulator.service import TasksService

Json = dict[str, Any]
MAX_CREATES = 100
MAX_DELETES = 1000
PACKAGE = "google.cloud.tasks.v2."
SUCCEEDED, PARTIALLY_SUCCEEDED = "SUCCEEDED", "PARTIALLY_SUCCEEDED"


def _items(body: Json, key: str, limit: int, what: str) -> list[Any]:
    items = body.get(key) or []
    if not isinstance(items, list) or not items:
        raise invalid(f"{key} is required: give 1 to {limit} {what}")
    if len(items) > limit:
        raise invalid(f"{key}: at most {limit} {what} per batch (got {len(items)}); split it into several batches")
    return items


def _create_request(parent: str, index: int, item: Any) -> Json:
    request = ws.obj(item, f"requests[{index}]")
    given = request.get("parent") or parent
    if given != parent:
        raise invalid(f"requests[{index}].parent {given!r} must be the batch's queue {parent!r}: all tasks of a "
                      "batch go to one queue")
    return request


async def _settled(work: Awaitable[Any]) -> Any:
    """``work``'s result, or the RpcError it raised (one failed item does not stop the batch)."""
    try:
        return await work
    except RpcError as exc:
        return exc


def _outcome(kind: str, started: float, ended: float, failures: dict[int, RpcError], response: Json,
             total: int) -> Json:
    """The operation's result: metadata plus a response, or an ABORTED error when nothing succeeded."""
    metadata = packed(PACKAGE + f"Batch{kind}TasksMetadata", {
        "startTime": wire.format_timestamp(started), "endTime": wire.format_timestamp(ended),
        "state": PARTIALLY_SUCCEEDED if failures else SUCCEEDED,
        **({"failedRequests": {str(i): e.to_status() for i, e in failures.items()}} if failures else {})})
    if failures and len(failures) == total:
        return {"metadata": metadata, "error": {"code": 10, "message": (
            f"None of the requests succeeded, refer to Batch{kind}TasksMetadata.failed_requests for individual "
            "error details")}}
    return {"metadata": metadata, "response": response}


async def batch_create(service: TasksService, parent: str, body: Json) -> Json:
    """BatchCreateTasks on queue ``parent``: the finished operation."""
    location = parent.rsplit("/queues/", 1)[0]
    retried = service.operations.retried(location, body.get("requestId") or "")
    if retried is not None:
        return retried
    requests = [_create_request(parent, i, item) for i, item in
                enumerate(_items(body, "requests", MAX_CREATES, "CreateTask requests"))]
    service.queue(parent)
    started = service.clock()
    results = await asyncio.gather(*(_settled(service.create_task(parent, r)) for r in requests))
    failures = {i: r for i, r in enumerate(results) if isinstance(r, RpcError)}
    tasks = [wire.task_to_json(task, _view(requests[i]), int_enums=False)
             for i, task in enumerate(results) if not isinstance(task, RpcError)]
    response = packed(PACKAGE + "BatchCreateTasksResponse", {"tasks": tasks} if tasks else {})
    result = _outcome("Create", started, service.clock(), failures, response, len(requests))
    return service.operations.record(location, body.get("requestId") or "", result)


def _view(request: Json) -> View:
    raw = request.get("responseView")
    return View.BASIC if raw in (None, "", 0, "VIEW_UNSPECIFIED") else wire.parse_enum(View, raw, "responseView")


async def batch_delete(service: TasksService, parent: str, body: Json) -> Json:
    """BatchDeleteTasks on queue ``parent``: the finished operation."""
    location = parent.rsplit("/queues/", 1)[0]
    retried = service.operations.retried(location, body.get("requestId") or "")
    if retried is not None:
        return retried
    names = [ws.string(n, f"names[{i}]") for i, n in enumerate(_items(body, "names", MAX_DELETES, "task names"))]
    service.queue(parent)
    started = service.clock()
    results = await asyncio.gather(*(_settled(_delete_one(service, parent, name)) for name in names))
    failures = {i: r for i, r in enumerate(results) if isinstance(r, RpcError)}
    result = _outcome("Delete", started, service.clock(), failures, packed("google.protobuf.Empty", {}), len(names))
    return service.operations.record(location, body.get("requestId") or "", result)


async def _delete_one(service: TasksService, parent: str, name: str) -> None:
    if name.rpartition("/tasks/")[0] != parent:
        raise invalid(f"{name!r} is not a task of the batch's queue {parent!r}")
    await service.delete_task(name)
