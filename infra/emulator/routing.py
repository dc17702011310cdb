"""Where and how an attempt goes: the task's request with its queue's overrides applied.

Computed at every dispatch, never stored, so changing a queue's ``httpTarget`` affects the
tasks already waiting in it, as in Cloud Tasks:

- ``uriOverride``: in ALWAYS mode (the default) each part it sets (scheme, host, port, path,
  query) replaces the task's; in IF_NOT_EXISTS mode a part is only filled in where the
  task's URL has none (no explicit port, an empty or ``/`` path, no query).
- ``httpMethod`` replaces the task's method; ``headerOverrides`` replace headers of the same
  name (case-insensitively) and add the others; a queue ``oidcToken``/``oauthToken``
  replaces the task's authorization.
- App Engine tasks go to ``--app-engine-host`` plus the task's relative URI, with the
  ``X-AppEngine-*`` headers App Engine handlers read.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field

from ordertasks.infra.emulator.model import (
    EnforceMode, HttpMethod, OAuthToken, OidcToken, Queue, Scheme, Task, UriOverride,
)

APP_ENGINE_USER_AGENT = "AppEngine-Google; (+http://code.google.com/appengine)"


@dataclass
class Delivery:
    """One attempt's request before the per-attempt headers are added."""

    method: HttpMethod
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    oidc_token: OidcToken | None = None
    oauth_token: OAuthToken | None = None
    app_engine: bool = False


def _netloc(host: str, port: int | None) -> str:
    bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{bracketed}:{port}" if port else bracketed


def _has_explicit_port(parts: urllib.parse.SplitResult) -> bool:
    try:
        return parts.port is not None
    except ValueError:
        return False


def override_uri(url: str, uri: UriOverride) -> str:
    """``url`` rewritten by ``uri`` according to its enforce mode."""
    parts = urllib.parse.urlsplit(url)
    fill_only = uri.mode == EnforceMode.IF_NOT_EXISTS
    scheme = parts.scheme or "https"
    if uri.scheme and not (fill_only and parts.scheme):
        scheme = "http" if uri.scheme == Scheme.HTTP else "https"
    host = parts.hostname or ""
    if uri.host is not None and not (fill_only and host):
        host = uri.host
    port = parts.port if _has_explicit_port(parts) else None
    if uri.port is not None and not (fill_only and port):
        port = uri.port or None
    path = parts.path
    if uri.path is not None and not (fill_only and path not in ("", "/")):
        path = uri.path if not uri.path or uri.path.startswith("/") else "/" + uri.path
    query = parts.query
    if uri.query is not None and not (fill_only and query):
        query = uri.query
    return urllib.parse.urlunsplit((scheme, _netloc(host, port), path, query, ""))


def _merge_headers(headers: dict[str, str], overrides: list[tuple[str, str]]) -> dict[str, str]:
    merged = dict(headers)
    for name, value in overrides:
        for existing in [k for k in merged if k.lower() == name.lower()]:
            del merged[existing]
        merged[name] = value
    return merged


def http_delivery(task: Task, queue: Queue) -> Delivery:
    """An HTTP task's request with the queue's ``httpTarget`` applied."""
    req = task.http_request
    delivery = Delivery(req.http_method, req.url, dict(req.headers), req.body, req.oidc_token, req.oauth_token)
    target = queue.http_target
    if target is None:
        return delivery
    if target.uri_override is not None:
        delivery.url = override_uri(delivery.url, target.uri_override)
    if target.http_method:
        delivery.method = target.http_method
    delivery.headers = _merge_headers(delivery.headers, target.header_overrides)
    if target.oidc_token is not None or target.oauth_token is not None:
        delivery.oidc_token, delivery.oauth_token = target.oidc_token, target.oauth_token
    return delivery


def app_engine_delivery(task: Task, app_engine_host: str) -> Delivery:
    """An App Engine task's request, aimed at the local App Engine host."""
    assert task.app_engine is not None
    req = task.http_request
    headers = dict(req.headers)
    if req.body and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/octet-stream"
    headers["User-Agent"] = APP_ENGINE_USER_AGENT
    return Delivery(req.http_method, app_engine_host.rstrip("/") + task.app_engine.relative_uri, headers,
                    req.body, app_engine=True)


def delivery_for(task: Task, queue: Queue, app_engine_host: str) -> Delivery:
    """The request one attempt of ``task`` sends."""
    if task.app_engine is not None:
        return app_engine_delivery(task, app_engine_host)
    return http_delivery(task, queue)


def buffered_url(uri: UriOverride) -> str:
    """The URL of a task created by BufferTask: the queue's URI override on an empty URL."""
    return override_uri("", UriOverride(uri.scheme, uri.host, uri.port, uri.path, uri.query, EnforceMode.ALWAYS))
