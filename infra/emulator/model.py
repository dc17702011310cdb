"""The emulator's domain: queues, tasks, attempts, and the retry policy.

Plain dataclasses, no I/O.  Times are float seconds since the epoch (wall clock), because
``scheduleTime`` is a wall-clock instant; durations are float seconds.  Defaults are those
of a new Cloud Tasks queue (per the Cloud Tasks v2 reference).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

QUEUE_ID = re.compile(r"^[A-Za-z0-9-]{1,100}$")
TASK_ID = re.compile(r"^[A-Za-z0-9_-]{1,500}$")
TASK_NAME = re.compile(r"^projects/[^/]+/locations/[^/]+/queues/[^/]+/tasks/[^/]+$")
PROJECT_ID = re.compile(r"^[A-Za-z0-9:._-]{1,100}$")
LOCATION_ID = re.compile(r"^[A-Za-z0-9-]{1,63}$")

DEFAULT_BURST = 100
DEFAULT_DEADLINE = 600.0
MIN_DEADLINE, MAX_DEADLINE = 15.0, 1800.0
MAX_SCHEDULE_AHEAD = 30 * 24 * 3600.0
MAX_TASK_BYTES = 1024 * 1024


class QueueState(enum.IntEnum):
    """``Queue.state`` (names on the wire for gcloud, numbers for the Python client)."""

    STATE_UNSPECIFIED = 0
    RUNNING = 1
    PAUSED = 2
    DISABLED = 3


class HttpMethod(enum.IntEnum):
    """``HttpRequest.httpMethod``."""

    HTTP_METHOD_UNSPECIFIED = 0
    POST = 1
    GET = 2
    HEAD = 3
    PUT = 4
    DELETE = 5
    PATCH = 6
    OPTIONS = 7


class View(enum.IntEnum):
    """``Task.view`` / ``responseView``: BASIC leaves out the request body."""

    VIEW_UNSPECIFIED = 0
    BASIC = 1
    FULL = 2


@dataclass
class RateLimits:
    """How fast a queue may dispatch: a token bucket plus a concurrency cap."""

    max_dispatches_per_second: float = 500.0
    max_burst_size: int = DEFAULT_BURST
    max_concurrent_dispatches: int = 1000


@dataclass
class RetryConfig:
    """When a failed task is tried again, and when it is given up."""

    max_attempts: int = 100
    max_retry_duration: float = 0.0
    min_backoff: float = 0.1
    max_backoff: float = 3600.0
    max_doublings: int = 16

    def backoff(self, k: int) -> float:
        """Delay before retry ``k`` (0 for the first retry): doubled D times, then linear, capped."""
        d = self.max_doublings
        grown = self.min_backoff * 2**k if k <= d else self.min_backoff * 2**d * (k - d + 1)
        return min(self.max_backoff, grown)

    def exhausted(self, attempts: int, first_attempt_at: float, now: float) -> bool:
        """True when both limits are used up (a limit of -1 attempts never is; 0 s duration always is)."""
        attempts_used = self.max_attempts != -1 and attempts >= self.max_attempts
        duration_used = self.max_retry_duration <= 0 or now - first_attempt_at >= self.max_retry_duration
        return attempts_used and duration_used


class Scheme(enum.IntEnum):
    """``UriOverride.scheme``."""

    SCHEME_UNSPECIFIED = 0
    HTTP = 1
    HTTPS = 2


class EnforceMode(enum.IntEnum):
    """``UriOverride.uriOverrideEnforceMode``: unspecified means ALWAYS."""

    URI_OVERRIDE_ENFORCE_MODE_UNSPECIFIED = 0
    IF_NOT_EXISTS = 1
    ALWAYS = 2


@dataclass
class UriOverride:
    """Queue-level rewrite of a task's URL; ``None`` parts are left alone."""

    scheme: Scheme = Scheme.SCHEME_UNSPECIFIED
    host: str | None = None
    port: int | None = None  # 0 clears the port
    path: str | None = None  # "" clears the path
    query: str | None = None  # "" clears the query
    mode: EnforceMode = EnforceMode.URI_OVERRIDE_ENFORCE_MODE_UNSPECIFIED


@dataclass
class OidcToken:
    """Ask the emulator to send ``Authorization: Bearer <OIDC token>`` for this account."""

    service_account_email: str
    audience: str = ""


@dataclass
class OAuthToken:
    """Ask the emulator to send ``Authorization: Bearer <access token>`` for this account."""

    service_account_email: str
    scope: str = ""


@dataclass
class HttpTarget:
    """A queue's ``httpTarget``: overrides applied to every HTTP task of the queue at dispatch."""

    uri_override: UriOverride | None = None
    http_method: "HttpMethod" = HttpMethod.HTTP_METHOD_UNSPECIFIED
    header_overrides: list[tuple[str, str]] = field(default_factory=list)
    oidc_token: OidcToken | None = None
    oauth_token: OAuthToken | None = None


@dataclass
class AppEngineRouting:
    """``appEngineRouting`` of an App Engine task (or a queue's override)."""

    service: str = ""
    version: str = ""
    instance: str = ""


@dataclass
class Binding:
    """One IAM role and its members."""

    role: str
    members: list[str] = field(default_factory=list)


@dataclass
class IamPolicy:
    """A queue's IAM policy; ``etag`` changes with every write (optimistic concurrency)."""

    version: int = 0
    bindings: list[Binding] = field(default_factory=list)
    etag: bytes = b"ACAB"


@dataclass
class Queue:
    """A push queue, named ``projects/P/locations/L/queues/Q``."""

    name: str
    rate_limits: RateLimits = field(default_factory=RateLimits)
    retry_config: RetryConfig = field(default_factory=RetryConfig)
    state: QueueState = QueueState.RUNNING
    purge_time: float | None = None
    http_target: HttpTarget | None = None
    app_engine_routing_override: AppEngineRouting | None = None
    logging_sampling_ratio: float = 0.0  # stackdriverLoggingConfig.samplingRatio
    iam_policy: IamPolicy = field(default_factory=IamPolicy)

    @property
    def queue_id(self) -> str:
        """The short id (last path segment)."""
        return self.name.rsplit("/", 1)[-1]


@dataclass
class HttpRequest:
    """What the dispatcher sends to the task's target.  For an App Engine task ``url`` is
    empty and :attr:`Task.app_engine` says where it goes."""

    url: str
    http_method: HttpMethod = HttpMethod.POST
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    oidc_token: OidcToken | None = None
    oauth_token: OAuthToken | None = None


@dataclass
class AppEngineTarget:
    """Where an App Engine task goes: its routing and the path (with query) on the app."""

    routing: AppEngineRouting = field(default_factory=AppEngineRouting)
    relative_uri: str = "/"


@dataclass
class Attempt:
    """One dispatch attempt as reported in ``firstAttempt`` / ``lastAttempt``."""

    schedule_time: float | None = None
    dispatch_time: float | None = None
    response_time: float | None = None
    response_status: tuple[int, str] | None = None  # (google.rpc.Code, message)


@dataclass
class Task:
    """An HTTP task, named ``projects/P/locations/L/queues/Q/tasks/T``."""

    name: str
    http_request: HttpRequest
    schedule_time: float
    create_time: float
    dispatch_deadline: float = DEFAULT_DEADLINE
    dispatch_count: int = 0
    response_count: int = 0
    # Responses that were not 5xx: what X-CloudTasks-TaskExecutionCount reports.
    execution_count: int = 0
    first_attempt: Attempt | None = None
    last_attempt: Attempt | None = None
    # Why the previous attempt failed, for X-CloudTasks-TaskRetryReason (not on the wire).
    retry_reason: str = ""
    previous_status: int | None = None
    app_engine: AppEngineTarget | None = None  # set for App Engine tasks
    # The task's own retryConfig: used at dispatch instead of its queue's when set.
    retry_config: RetryConfig | None = None

    @property
    def task_id(self) -> str:
        """The short id (last path segment)."""
        return self.name.rsplit("/", 1)[-1]

    @property
    def queue_name(self) -> str:
        """Full name of the queue that holds this task."""
        return self.name.rsplit("/tasks/", 1)[0]


def queue_id_of(task_name: str) -> str:
    """The short queue id inside a full task name."""
    return task_name.split("/")[5]
