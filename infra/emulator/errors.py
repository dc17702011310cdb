"""RPC errors of the emulator, answered as ``google.rpc.Status`` JSON.

One exception, :class:`RpcError`, carries a canonical status name and a message; the
HTTP layer turns it into ``{"error": {"code", "message", "status"}}`` with the HTTP status
Google's REST gateway uses for that canonical code.  The constructors below name what
happened, so handlers read ``raise not_found_task()`` instead of juggling numbers.
"""

from __future__ import annotations

from typing import Any

# canonical status -> (google.rpc.Code number, HTTP status) as Google's REST front end maps them.
STATUS_CODES: dict[str, tuple[int, int]] = {
    "OK": (0, 200),
    "CANCELLED": (1, 499),
    "UNKNOWN": (2, 500),
    "INVALID_ARGUMENT": (3, 400),
    "DEADLINE_EXCEEDED": (4, 504),
    "NOT_FOUND": (5, 404),
    "ALREADY_EXISTS": (6, 409),
    "PERMISSION_DENIED": (7, 403),
    "RESOURCE_EXHAUSTED": (8, 429),
    "FAILED_PRECONDITION": (9, 400),
    "ABORTED": (10, 409),
    "OUT_OF_RANGE": (11, 400),
    "UNIMPLEMENTED": (12, 501),
    "INTERNAL": (13, 500),
    "UNAVAILABLE": (14, 503),
    "UNAUTHENTICATED": (16, 401),
}

TASK_EXISTS = "Requested entity already exists"
TASK_EXISTED_RECENTLY = (
    "The task cannot be created because a task with this name existed too recently. "
    "For more information about task de-duplication see "
    "https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks/create"
    "#body.request_body.FIELDS.task."
)
TASK_GONE_RECENTLY = (
    "The task no longer exists, though a task with this name existed recently. "
    "The task either successfully completed or was deleted."
)
ENTITY_NOT_FOUND = "Requested entity was not found."
QUEUE_NOT_FOUND = (
    "Queue does not exist. If you just created the queue, wait at least a minute "
    "for the queue to initialize."
)
QUEUE_EXISTED_RECENTLY = (
    "The queue cannot be created because a queue with this name existed too recently."
)
TASK_NAME_FORMAT = ('Task name must be formatted: '
                    '"projects/<PROJECT_ID>/locations/<LOCATION_ID>/queues/<QUEUE_ID>/tasks/<TASK_ID>"')
TASK_ID_HELP = ("Definition of task ID",
                "https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks#Task.FIELDS.name")


class RpcError(Exception):
    """A failed API call: canonical ``status`` name plus a message that says what to fix.

    ``http`` overrides the HTTP status of the canonical code where Google's front end answers
    otherwise (a request body over the size limit is a 413 before any API code runs).
    """

    def __init__(self, status: str, message: str, http: int | None = None,
                 details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.http = http
        self.details = details or []

    @property
    def http_status(self) -> int:
        """The HTTP status the REST API answers with for this error."""
        return self.http or STATUS_CODES[self.status][1]

    def to_json(self) -> dict[str, Any]:
        """The ``{"error": google.rpc.Status}`` body of the HTTP answer."""
        error: dict[str, Any] = {"code": self.http_status, "message": self.message, "status": self.status}
        return {"error": {**error, "details": self.details} if self.details else error}

    def to_status(self) -> dict[str, Any]:
        """This error as a ``google.rpc.Status`` in proto3 JSON (numeric code), as an operation
        or a batch's ``failedRequests`` holds it."""
        return {"code": STATUS_CODES[self.status][0], "message": self.message}


def invalid(message: str) -> RpcError:
    """INVALID_ARGUMENT: the request names the field that is wrong."""
    return RpcError("INVALID_ARGUMENT", message)


def help_detail(description: str, url: str) -> dict[str, Any]:
    """A ``google.rpc.Help`` error detail: one link that explains the rule."""
    return {"@type": "type.googleapis.com/google.rpc.Help", "links": [{"description": description, "url": url}]}


def invalid_task_id(task_id: str) -> RpcError:
    """INVALID_ARGUMENT for a task id outside ``[A-Za-z0-9_-]{1,500}``, worded as Cloud Tasks words it."""
    return RpcError("INVALID_ARGUMENT",
                    f'Task ID "{task_id}" can contain only letters ([A-Za-z]), numbers ([0-9]), hyphens (-), or '
                    "underscores (_). Task ID must between 1 and 500 characters.", details=[help_detail(*TASK_ID_HELP)])


def task_in_other_queue(parent: str, task_queue: str) -> RpcError:
    """INVALID_ARGUMENT for a task name that names another queue than the one it is created in."""
    return RpcError("INVALID_ARGUMENT", f"The queue name from request ('{parent}') must be the same as the queue "
                                        f"name in the named task ('{task_queue}').")


def not_found(message: str = ENTITY_NOT_FOUND) -> RpcError:
    """NOT_FOUND with the given (real Cloud Tasks) message."""
    return RpcError("NOT_FOUND", message)


def already_exists(message: str = TASK_EXISTS) -> RpcError:
    """ALREADY_EXISTS with the given (real Cloud Tasks) message."""
    return RpcError("ALREADY_EXISTS", message)


def failed_precondition(message: str) -> RpcError:
    """FAILED_PRECONDITION: the request is valid but the resource's state forbids it."""
    return RpcError("FAILED_PRECONDITION", message)


def resource_exhausted(message: str) -> RpcError:
    """RESOURCE_EXHAUSTED (429 over REST): a limit of the emulator is reached; the message names its flag."""
    return RpcError("RESOURCE_EXHAUSTED", message)


def request_too_large(size: int | None, limit: int) -> RpcError:
    """A request body over ``limit`` bytes: 413 over REST (RESOURCE_EXHAUSTED, as gRPC says it)."""
    told = f"of {size} bytes" if size is not None else "larger than that"
    return RpcError("RESOURCE_EXHAUSTED", f"Request payload size exceeds the limit: {limit} bytes (this one is "
                                          f"{told}). A Cloud Tasks task is at most 1 MiB: send a smaller task body",
                    http=413)


def rpc_code_for_http(status: int) -> int:
    """The google.rpc.Code Cloud Tasks records in ``lastAttempt.responseStatus`` for an HTTP status."""
    if 200 <= status < 300:
        return 0
    table = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 412: 9, 416: 11, 429: 8, 499: 1,
             501: 12, 503: 14, 504: 4}
    if status in table:
        return table[status]
    return 13 if status >= 500 else 9 if status >= 400 else 2
