"""The long-running operations BatchCreateTasks and BatchDeleteTasks return, for
``google.longrunning.Operations/GetOperation`` (REST: ``GET /v2/projects/P/locations/L/operations/ID``).

The emulator finishes a batch before it answers, so every operation is born ``done``: its
``metadata`` (start, end, state, failed requests) and its ``response`` or ``error`` are final.
A batch retried with the same ``requestId`` gets the operation of the first call back instead
of running again, which is what ``requestId`` is for.  Operations are kept in memory, the
most recent :data:`MAX_OPERATIONS`; an unknown name (or one from before a restart) is
NOT_FOUND "Requested entity was not found.", as Google's operations endpoints answer.
Enums inside are written as names, which every client parses.
"""

from __future__ import annotations

import collections
import secrets
from typing import Any

from ordertasks.infra.emulator import errors

Json = dict[str, Any]
MAX_OPERATIONS = 10_000
TYPE_PREFIX = "type.googleapis.com/"


def packed(type_name: str, fields: Json) -> Json:
    """A ``google.protobuf.Any`` in proto3 JSON: the message's fields plus ``@type``."""
    return {"@type": TYPE_PREFIX + type_name, **fields}


class Operations:
    """Finished operations by name, and by (location, requestId) for retried batches."""

    def __init__(self, limit: int = MAX_OPERATIONS) -> None:
        self.limit = limit
        self.by_name: collections.OrderedDict[str, Json] = collections.OrderedDict()
        self.by_request: dict[tuple[str, str], str] = {}

    def get(self, name: str) -> Json:
        """The operation called ``name`` or NOT_FOUND."""
        operation = self.by_name.get(name)
        if operation is None:
            raise errors.not_found()
        return operation

    def retried(self, location: str, request_id: str) -> Json | None:
        """The operation an earlier call with this ``requestId`` made, if it is still kept."""
        name = self.by_request.get((location, request_id)) if request_id else None
        return self.by_name.get(name) if name else None

    def record(self, location: str, request_id: str, result: Json) -> Json:
        """Keep a finished operation (``metadata`` plus ``response`` or ``error``) and return it."""
        name = f"{location}/operations/{secrets.token_hex(8)}"
        operation = {"name": name, "done": True, **result}
        self.by_name[name] = operation
        if request_id:
            self.by_request[(location, request_id)] = name
        while len(self.by_name) > self.limit:
            self._forget_oldest()
        return operation

    def _forget_oldest(self) -> None:
        name, _ = self.by_name.popitem(last=False)
        for key in [k for k, v in self.by_request.items() if v == name]:
            del self.by_request[key]

    def clear(self) -> None:
        """Forget every operation (``/_emulator/reset``)."""
        self.by_name.clear()
        self.by_request.clear()
