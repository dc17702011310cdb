"""JSON wire format of Cloud Tasks v2 REST: model <-> JSON, durations, timestamps, enums.

Parsing is tolerant the way proto3 JSON is (numbers may arrive as strings, enums as names or
numbers, unknown fields are ignored) and strict about types: a wrong type raises
INVALID_ARGUMENT naming the field.  Output follows proto3 JSON: zero values are left out,
durations are ``"600s"`` / ``"0.100s"``, timestamps RFC 3339 in UTC with ``Z``, and enums are
names unless the caller asked for ``enum-encoding=int``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import re
from typing import Any, TypeVar

from infra.emulator.errors import invalid
from infra.emulator.model import (
    Attempt, HttpMethod, HttpRequest, OidcToken, Queue, RateLimits, RetryConfig, Task, View,
)

E = TypeVar("E", bound=enum.IntEnum)
_DURATION = re.compile(r"^(-?)(\d+)(?:\.(\d{1,9}))?s$")
_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?([Zz]|[+-]\d\d:\d\d)$")
Json = dict[str, Any]


# -- scalars -------------------------------------------------------------------------------

def parse_duration(value: Any, path: str) -> float:
    """``"600s"`` / ``"0.100s"`` -> seconds; INVALID_ARGUMENT naming ``path`` otherwise."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise invalid(f"{path}: invalid duration {value!r}; use seconds with an 's' suffix, e.g. \"10s\" or \"0.5s\"")
    sign = -1.0 if match.group(1) else 1.0
    return sign * (int(match.group(2)) + float("0." + (match.group(3) or "0")))


def format_duration(seconds: float) -> str:
    """Seconds -> proto3 JSON duration (0, 3, 6 digits of fraction, as protobuf prints)."""
    micros = round(seconds * 1_000_000)
    whole, frac = divmod(abs(micros), 1_000_000)
    sign = "-" if micros < 0 else ""
    if frac == 0:
        return f"{sign}{whole}s"
    if frac % 1000 == 0:
        return f"{sign}{whole}.{frac // 1000:03d}s"
    return f"{sign}{whole}.{frac:06d}s"


def parse_timestamp(value: Any, path: str) -> float:
    """RFC 3339 text -> epoch seconds; INVALID_ARGUMENT naming ``path`` otherwise."""
    match = _TIMESTAMP.match(value) if isinstance(value, str) else None
    if not match:
        raise invalid(f"{path}: invalid timestamp {value!r}; use RFC 3339, e.g. \"2030-01-02T03:04:05Z\"")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    zone = match.group(8).upper()
    offset = dt.timedelta(0) if zone == "Z" else _offset(zone)
    try:
        base = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.timezone(offset))
    except ValueError as exc:
        raise invalid(f"{path}: invalid timestamp {value!r}: {exc}") from exc
    return base.timestamp() + float("0." + (match.group(7) or "0"))


def _offset(zone: str) -> dt.timedelta:
    sign = -1 if zone[0] == "-" else 1
    return sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))


def format_timestamp(epoch: float) -> str:
    """Epoch seconds -> RFC 3339 UTC with ``Z`` (microseconds when not whole)."""
    micros = round(epoch * 1_000_000)
    whole, frac = divmod(micros, 1_000_000)
    text = dt.datetime.fromtimestamp(whole, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{frac:06d}Z" if frac else f"{text}Z"


def parse_enum(kind: type[E], value: Any, path: str) -> E:
    """An enum given by name (gcloud) or number (the Python client)."""
    try:
        if isinstance(value, str) and not value.lstrip("-").isdigit():
            return kind[value]
        return kind(int(value))
    except (KeyError, ValueError, TypeError):
        names = ", ".join(m.name for m in kind)
        raise invalid(f"{path}: invalid value {value!r}; expected one of {names}") from None


def format_enum(value: enum.IntEnum, as_int: bool) -> Any:
    """Enum for output: its number when the caller asked for ``enum-encoding=int``."""
    return int(value) if as_int else value.name


def _number(value: Any, path: str, kind: type = int) -> Any:
    """A proto3 JSON number (which may arrive as a string)."""
    if isinstance(value, bool):
        raise invalid(f"{path}: expected a number, got {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise invalid(f"{path}: expected a number, got {value!r}") from None
    if kind is int and isinstance(value, float) and value != number:
        raise invalid(f"{path}: expected an integer, got {value!r}")
    return number


def _object(value: Any, path: str) -> Json:
    if not isinstance(value, dict):
        raise invalid(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise invalid(f"{path}: expected a string, got {type(value).__name__}")
    return value


def _compact(obj: Json) -> Json:
    """Drop proto3 default values (None, 0, "", empty containers), as the real API does."""
    return {k: v for k, v in obj.items() if v not in (None, 0, "", {}, [])}


# -- queues --------------------------------------------------------------------------------

RATE_FIELDS = {"maxDispatchesPerSecond": ("max_dispatches_per_second", float),
               "maxBurstSize": ("max_burst_size", int),
               "maxConcurrentDispatches": ("max_concurrent_dispatches", int)}
RETRY_FIELDS = {"maxAttempts": ("max_attempts", int), "maxDoublings": ("max_doublings", int),
                "maxRetryDuration": ("max_retry_duration", "duration"),
                "minBackoff": ("min_backoff", "duration"), "maxBackoff": ("max_backoff", "duration")}


def _parse_field(raw: Any, kind: Any, path: str) -> Any:
    if kind == "duration":
        return parse_duration(raw, path)
    return _number(raw, path, kind)


IGNORED_MASK_GROUPS = ("httpTarget", "stackdriverLoggingConfig", "appEngineRoutingOverride")


def mask_paths(body: Json) -> list[str]:
    """Every settable field present in a queue body, as update-mask paths (no mask = all)."""
    paths = []
    for group, fields in (("rateLimits", RATE_FIELDS), ("retryConfig", RETRY_FIELDS)):
        section = body.get(group)
        if isinstance(section, dict):
            paths += [f"{group}.{key}" for key in fields if key in section]
    return paths


def known_mask_path(path: str) -> bool:
    """Whether ``path`` (camelCase) is a queue field the emulator can update (or ignores on purpose)."""
    group, _, key = path.partition(".")
    if group in IGNORED_MASK_GROUPS:
        return True
    fields = {"rateLimits": RATE_FIELDS, "retryConfig": RETRY_FIELDS}.get(group)
    return fields is not None and (not key or key in fields)


def apply_queue_fields(queue: Queue, body: Json, paths: list[str], prefix: str = "queue") -> None:
    """Copy the fields named by ``paths`` (camelCase update-mask paths) from ``body`` into ``queue``.

    A field named by the mask but absent from the body, or a number sent as 0 (proto3 cannot
    tell 0 from unset), goes back to the queue default, as Cloud Tasks does.
    """
    groups = {"rateLimits": (RATE_FIELDS, queue.rate_limits, RateLimits()),
              "retryConfig": (RETRY_FIELDS, queue.retry_config, RetryConfig())}
    for path in paths:
        group, _, key = path.partition(".")
        if group not in groups:
            continue
        fields, target, defaults = groups[group]
        section = _object(body.get(group) or {}, f"{prefix}.{group}")
        for name in ([key] if key else list(fields)):
            attr, kind = fields[name]
            raw = section.get(name)
            unset = raw is None or (kind != "duration" and raw in (0, "0"))
            value = getattr(defaults, attr) if unset else _parse_field(raw, kind, f"{prefix}.{group}.{name}")
            setattr(target, attr, value)


def queue_to_json(queue: Queue, int_enums: bool) -> Json:
    """A queue as the REST API returns it."""
    rate, retry = queue.rate_limits, queue.retry_config
    out: Json = {
        "name": queue.name,
        "rateLimits": _compact({"maxDispatchesPerSecond": float(rate.max_dispatches_per_second),
                                "maxBurstSize": rate.max_burst_size,
                                "maxConcurrentDispatches": rate.max_concurrent_dispatches}),
        "retryConfig": _compact({"maxAttempts": retry.max_attempts,
                                 "maxRetryDuration": format_duration(retry.max_retry_duration) if retry.max_retry_duration else None,
                                 "minBackoff": format_duration(retry.min_backoff),
                                 "maxBackoff": format_duration(retry.max_backoff),
                                 "maxDoublings": retry.max_doublings}),
        "state": format_enum(queue.state, int_enums),
    }
    if queue.purge_time is not None:
        out["purgeTime"] = format_timestamp(queue.purge_time)
    return out


# -- tasks ---------------------------------------------------------------------------------

def http_request_from_json(obj: Any, path: str = "task.httpRequest") -> HttpRequest:
    """Parse ``httpRequest``: url, httpMethod, headers, base64 body, oidcToken."""
    obj = _object(obj, path)
    url = _string(obj.get("url", ""), f"{path}.url")
    method = parse_enum(HttpMethod, obj.get("httpMethod", "POST"), f"{path}.httpMethod")
    headers = _object(obj.get("headers") or {}, f"{path}.headers")
    for key, value in headers.items():
        _string(value, f"{path}.headers[{key!r}]")
    oidc = None
    if obj.get("oidcToken"):
        token = _object(obj["oidcToken"], f"{path}.oidcToken")
        oidc = OidcToken(_string(token.get("serviceAccountEmail", ""), f"{path}.oidcToken.serviceAccountEmail"),
                         _string(token.get("audience", ""), f"{path}.oidcToken.audience"))
    if obj.get("oauthToken"):
        raise invalid(f"{path}.oauthToken: OAuth tokens are not supported by the emulator; use oidcToken")
    body = _base64(obj.get("body", ""), f"{path}.body")
    return HttpRequest(url=url, http_method=method if method else HttpMethod.POST,
                       headers=dict(headers), body=body, oidc_token=oidc)


def _base64(value: Any, path: str) -> bytes:
    text = _string(value, path)
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if ("-" in text or "_" in text) else None,
                                validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{path}: not valid base64") from None


def attempt_from_json(obj: Any, path: str) -> Attempt | None:
    """Parse a stored ``firstAttempt`` / ``lastAttempt``."""
    if not obj:
        return None
    times = {key: parse_timestamp(obj[key], f"{path}.{key}") if obj.get(key) else None
             for key in ("scheduleTime", "dispatchTime", "responseTime")}
    status = obj.get("responseStatus")
    return Attempt(times["scheduleTime"], times["dispatchTime"], times["responseTime"],
                   (int(status.get("code", 0)), str(status.get("message", ""))) if status else None)


def attempt_to_json(attempt: Attempt | None) -> Json | None:
    """An attempt as the REST API returns it."""
    if attempt is None:
        return None
    out = {key: format_timestamp(value) for key, value in (
        ("scheduleTime", attempt.schedule_time), ("dispatchTime", attempt.dispatch_time),
        ("responseTime", attempt.response_time)) if value is not None}
    if attempt.response_status is not None:
        code, message = attempt.response_status
        out["responseStatus"] = _compact({"code": code, "message": message})
    return out


def task_from_json(obj: Any, now: float, path: str = "task") -> Task:
    """Parse a task body; missing scheduleTime means ``now``.  Output-only fields are read too
    (stored tasks use the same format); the API layer resets them on create."""
    obj = _object(obj, path)
    if obj.get("appEngineHttpRequest"):
        raise invalid(f"{path}.appEngineHttpRequest: App Engine tasks are not supported by the emulator; use httpRequest")
    if "httpRequest" not in obj:
        raise invalid(f"{path}.httpRequest is required (the emulator supports HTTP tasks)")
    schedule = parse_timestamp(obj["scheduleTime"], f"{path}.scheduleTime") if obj.get("scheduleTime") else now
    deadline = parse_duration(obj["dispatchDeadline"], f"{path}.dispatchDeadline") if obj.get("dispatchDeadline") else 600.0
    return Task(
        name=_string(obj.get("name", ""), f"{path}.name"),
        http_request=http_request_from_json(obj["httpRequest"], f"{path}.httpRequest"),
        schedule_time=schedule,
        create_time=parse_timestamp(obj["createTime"], f"{path}.createTime") if obj.get("createTime") else now,
        dispatch_deadline=deadline,
        dispatch_count=_number(obj.get("dispatchCount", 0), f"{path}.dispatchCount"),
        response_count=_number(obj.get("responseCount", 0), f"{path}.responseCount"),
        first_attempt=attempt_from_json(obj.get("firstAttempt"), f"{path}.firstAttempt"),
        last_attempt=attempt_from_json(obj.get("lastAttempt"), f"{path}.lastAttempt"),
    )


def task_to_json(task: Task, view: View, int_enums: bool) -> Json:
    """A task as the REST API returns it; BASIC leaves out ``httpRequest.body``."""
    req = task.http_request
    http: Json = {"url": req.url, "httpMethod": format_enum(req.http_method, int_enums), "headers": req.headers}
    if view == View.FULL and req.body:
        http["body"] = base64.b64encode(req.body).decode("ascii")
    if req.oidc_token is not None:
        http["oidcToken"] = _compact({"serviceAccountEmail": req.oidc_token.service_account_email,
                                      "audience": req.oidc_token.audience})
    return _compact({
        "name": task.name,
        "httpRequest": http,
        "scheduleTime": format_timestamp(task.schedule_time),
        "createTime": format_timestamp(task.create_time),
        "dispatchDeadline": format_duration(task.dispatch_deadline),
        "dispatchCount": task.dispatch_count,
        "responseCount": task.response_count,
        "firstAttempt": attempt_to_json(task.first_attempt),
        "lastAttempt": attempt_to_json(task.last_attempt),
        "view": format_enum(view, int_enums),
    })
