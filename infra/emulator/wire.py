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
from dataclasses import dataclass
from typing import Any

from ordertasks.infra.emulator import wire_targets
from ordertasks.infra.emulator.errors import invalid
from ordertasks.infra.emulator.model import (
    AppEngineTarget, Attempt, HttpMethod, HttpRequest, Queue, RateLimits, RetryConfig, Task, View,
)
from ordertasks.infra.emulator.wire_scalars import (  # noqa: F401 - re-exported: the wire format's scalars
    INT64, check_header, compact as _compact, number, format_duration, format_enum, format_timestamp, number as _number,
    obj as _object, parse_duration, parse_enum, parse_timestamp, string as _string,
)

Json = dict[str, Any]


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


def mask_paths(body: Json) -> list[str]:
    """Every settable field present in a queue body, as update-mask paths (no mask = all)."""
    paths = []
    for group, fields in (("rateLimits", RATE_FIELDS), ("retryConfig", RETRY_FIELDS)):
        section = body.get(group)
        if isinstance(section, dict):
            paths += [f"{group}.{key}" for key in fields if key in section]
    return paths + [group for group in wire_targets.MERGED_GROUPS if body.get(group)]


def known_mask_path(path: str) -> bool:
    """Whether ``path`` (camelCase) is a queue field the emulator can update."""
    group, _, key = path.partition(".")
    if group in wire_targets.MERGED_GROUPS:
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
    wire_targets.apply_groups(queue, body, paths, prefix)


def retry_config_from_json(obj: Any, path: str) -> RetryConfig:
    """A task's ``retryConfig``: the fields it sets, the others at a new queue's defaults (0 = unset)."""
    section = _object(obj, path)
    config = RetryConfig()
    for name, (attr, kind) in RETRY_FIELDS.items():
        raw = section.get(name)
        if raw is not None and (kind == "duration" or raw not in (0, "0")):
            setattr(config, attr, _parse_field(raw, kind, f"{path}.{name}"))
    return config


def retry_config_to_json(retry: RetryConfig) -> Json:
    """A ``retryConfig`` (a queue's or a task's) as the REST API returns it."""
    return _compact({"maxAttempts": retry.max_attempts,
                     "maxRetryDuration": format_duration(retry.max_retry_duration) if retry.max_retry_duration else None,
                     "minBackoff": format_duration(retry.min_backoff),
                     "maxBackoff": format_duration(retry.max_backoff),
                     "maxDoublings": retry.max_doublings})


def expand_groups(mask: list[str], group: str) -> list[str]:
    """``mask`` with a bare ``group`` path replaced by each of the group's fields."""
    fields = {"rateLimits": RATE_FIELDS, "retryConfig": RETRY_FIELDS}[group]
    return [p for path in mask for p in ([f"{group}.{key}" for key in fields] if path == group else [path])]


def without_burst(body: Json) -> Json:
    """A queue body without ``rateLimits.maxBurstSize``: output only in v2, so an update ignores it."""
    rate = body.get("rateLimits")
    if not isinstance(rate, dict) or "maxBurstSize" not in rate:
        return body
    return {**body, "rateLimits": {k: v for k, v in rate.items() if k != "maxBurstSize"}}


def queue_to_json(queue: Queue, int_enums: bool) -> Json:
    """A queue as the REST API returns it."""
    rate = queue.rate_limits
    out: Json = {
        "name": queue.name,
        "rateLimits": _compact({"maxDispatchesPerSecond": float(rate.max_dispatches_per_second),
                                "maxBurstSize": rate.max_burst_size,
                                "maxConcurrentDispatches": rate.max_concurrent_dispatches}),
        "retryConfig": retry_config_to_json(queue.retry_config),
        "state": format_enum(queue.state, int_enums),
    }
    if queue.purge_time is not None:
        out["purgeTime"] = format_timestamp(queue.purge_time)
    return {**out, **wire_targets.groups_to_json(queue, int_enums)}


# -- tasks ---------------------------------------------------------------------------------

def headers_from_json(raw: Any, path: str) -> dict[str, str]:
    """A header map whose every name and value can go on the wire."""
    headers = _object(raw or {}, path)
    for key, value in headers.items():
        check_header(key, _string(value, f"{path}[{key!r}]"), f"{path}[{key!r}]")
    return dict(headers)


def http_request_from_json(obj: Any, path: str = "task.httpRequest") -> HttpRequest:
    """Parse ``httpRequest``: url, httpMethod, headers, base64 body, oidcToken or oauthToken."""
    obj = _object(obj, path)
    url = _string(obj.get("url", ""), f"{path}.url")
    method = parse_enum(HttpMethod, obj.get("httpMethod", "POST"), f"{path}.httpMethod")
    if obj.get("oidcToken") and obj.get("oauthToken"):
        raise invalid(f"{path}: set at most one of oidcToken and oauthToken")
    return HttpRequest(
        url=url, http_method=method if method else HttpMethod.POST,
        headers=headers_from_json(obj.get("headers"), f"{path}.headers"),
        body=_base64(obj.get("body", ""), f"{path}.body"),
        oidc_token=wire_targets.oidc_from_json(obj["oidcToken"], f"{path}.oidcToken") if obj.get("oidcToken") else None,
        oauth_token=wire_targets.oauth_from_json(obj["oauthToken"], f"{path}.oauthToken") if obj.get("oauthToken") else None)


def app_engine_from_json(obj: Any, path: str = "task.appEngineHttpRequest") -> tuple[HttpRequest, AppEngineTarget]:
    """Parse ``appEngineHttpRequest``: what to send, and the routing and relative URI."""
    obj = _object(obj, path)
    relative = _string(obj.get("relativeUri", "/") or "/", f"{path}.relativeUri")
    if not relative.startswith("/") or any(c in relative for c in " \r\n\0#"):
        raise invalid(f"{path}.relativeUri must start with / and contain no spaces or control characters "
                      f"(got {relative[:80]!r})")
    method = parse_enum(HttpMethod, obj.get("httpMethod", "POST"), f"{path}.httpMethod")
    request = HttpRequest(url="", http_method=method if method else HttpMethod.POST,
                          headers=headers_from_json(obj.get("headers"), f"{path}.headers"),
                          body=_base64(obj.get("body", ""), f"{path}.body"))
    routing = wire_targets.routing_from_json(obj.get("appEngineRouting") or {}, f"{path}.appEngineRouting")
    return request, AppEngineTarget(routing, relative)


def _base64(value: Any, path: str) -> bytes:
    text = _string(value, path)
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if ("-" in text or "_" in text) else None,
                                validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{path}: not valid base64") from None


@dataclass
class HttpBody:
    """A ``google.api.HttpBody``: BufferTask's payload."""

    content_type: str = ""
    data: bytes = b""


def http_body_from_json(obj: Any, path: str) -> HttpBody:
    """Parse an HttpBody (``contentType``, base64 ``data``); absent means empty."""
    obj = _object(obj or {}, path)
    content_type = _string(obj.get("contentType", ""), f"{path}.contentType")
    check_header("Content-Type", content_type, f"{path}.contentType")
    return HttpBody(content_type, _base64(obj.get("data", ""), f"{path}.data"))


def attempt_from_json(obj: Any, path: str) -> Attempt | None:
    """Parse a stored ``firstAttempt`` / ``lastAttempt``."""
    if not obj:
        return None
    obj = _object(obj, path)
    times = {key: parse_timestamp(obj[key], f"{path}.{key}") if obj.get(key) else None
             for key in ("scheduleTime", "dispatchTime", "responseTime")}
    status = _object(obj.get("responseStatus") or {}, f"{path}.responseStatus")
    code = _number(status.get("code", 0), f"{path}.responseStatus.code")
    message = _string(status.get("message", ""), f"{path}.responseStatus.message")
    return Attempt(times["scheduleTime"], times["dispatchTime"], times["responseTime"],
                   (code, message) if status else None)


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
    request, app_engine = _target_from_json(obj, path)
    schedule = parse_timestamp(obj["scheduleTime"], f"{path}.scheduleTime") if obj.get("scheduleTime") else now
    deadline = parse_duration(obj["dispatchDeadline"], f"{path}.dispatchDeadline") if obj.get("dispatchDeadline") else 600.0
    return Task(
        name=_string(obj.get("name", ""), f"{path}.name"),
        http_request=request,
        app_engine=app_engine,
        schedule_time=schedule,
        create_time=parse_timestamp(obj["createTime"], f"{path}.createTime") if obj.get("createTime") else now,
        dispatch_deadline=deadline,
        dispatch_count=_number(obj.get("dispatchCount", 0), f"{path}.dispatchCount"),
        response_count=_number(obj.get("responseCount", 0), f"{path}.responseCount"),
        first_attempt=attempt_from_json(obj.get("firstAttempt"), f"{path}.firstAttempt"),
        last_attempt=attempt_from_json(obj.get("lastAttempt"), f"{path}.lastAttempt"),
        retry_config=retry_config_from_json(obj["retryConfig"], f"{path}.retryConfig") if obj.get("retryConfig") else None,
    )


def _target_from_json(obj: Json, path: str) -> tuple[HttpRequest, AppEngineTarget | None]:
    if obj.get("appEngineHttpRequest") and obj.get("httpRequest"):
        raise invalid(f"{path}: set either httpRequest or appEngineHttpRequest, not both")
    if obj.get("appEngineHttpRequest"):
        return app_engine_from_json(obj["appEngineHttpRequest"], f"{path}.appEngineHttpRequest")
    if "httpRequest" not in obj:
        raise invalid(f"{path}.httpRequest is required (or appEngineHttpRequest for an App Engine task)")
    return http_request_from_json(obj["httpRequest"], f"{path}.httpRequest"), None


def _app_engine_to_json(task: Task, view: View, int_enums: bool) -> Json:
    assert task.app_engine is not None
    req = task.http_request
    routing = task.app_engine.routing
    out: Json = {"httpMethod": format_enum(req.http_method, int_enums), "headers": req.headers,
                 "appEngineRouting": wire_targets.routing_to_json(routing, wire_targets.app_engine_host(task.name, routing)),
                 "relativeUri": task.app_engine.relative_uri}
    if view == View.FULL and req.body:
        out["body"] = base64.b64encode(req.body).decode("ascii")
    return _compact(out)


def task_to_json(task: Task, view: View, int_enums: bool) -> Json:
    """A task as the REST API returns it; BASIC leaves out ``httpRequest.body``."""
    req = task.http_request
    http: Json = {"url": req.url, "httpMethod": format_enum(req.http_method, int_enums), "headers": req.headers}
    if view == View.FULL and req.body:
        http["body"] = base64.b64encode(req.body).decode("ascii")
    if req.oidc_token is not None:
        http["oidcToken"] = wire_targets.oidc_to_json(req.oidc_token)
    if req.oauth_token is not None:
        http["oauthToken"] = wire_targets.oauth_to_json(req.oauth_token)
    target = ({"appEngineHttpRequest": _app_engine_to_json(task, view, int_enums)} if task.app_engine
              else {"httpRequest": http})
    return _compact({
        "name": task.name,
        **target,
        "scheduleTime": format_timestamp(task.schedule_time),
        "createTime": format_timestamp(task.create_time),
        "dispatchDeadline": format_duration(task.dispatch_deadline),
        "dispatchCount": task.dispatch_count,
        "responseCount": task.response_count,
        "firstAttempt": attempt_to_json(task.first_attempt),
        "lastAttempt": attempt_to_json(task.last_attempt),
        "view": format_enum(view, int_enums),
        "retryConfig": retry_config_to_json(task.retry_config) if task.retry_config else None,
    })
