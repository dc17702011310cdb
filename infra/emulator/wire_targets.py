"""JSON of the queue-level settings beyond rates and retries: ``httpTarget``,
``appEngineRoutingOverride``, ``stackdriverLoggingConfig``, and of the two token kinds.

An update mask may name any depth inside these groups (gcloud sends
``httpTarget.oidcToken.audience``), so updates are merged at the JSON level: the queue's
current group as JSON, the masked paths copied from the request (absent = cleared), then
the whole group parsed again, so a merged result is validated like a new one.
"""

from __future__ import annotations

import copy
from typing import Any

from ordertasks.infra.emulator import wire_scalars as ws
from ordertasks.infra.emulator.errors import invalid
from ordertasks.infra.emulator.model import (
    AppEngineRouting, EnforceMode, HttpMethod, HttpTarget, OAuthToken, OidcToken, Queue, Scheme, UriOverride,
)

Json = dict[str, Any]
MERGED_GROUPS = ("httpTarget", "appEngineRoutingOverride", "stackdriverLoggingConfig")


# -- tokens --------------------------------------------------------------------------------

def oidc_from_json(obj: Any, path: str) -> OidcToken:
    """``oidcToken``: serviceAccountEmail (required) and audience."""
    obj = ws.obj(obj, path)
    email = ws.string(obj.get("serviceAccountEmail", ""), f"{path}.serviceAccountEmail")
    if not email:
        raise invalid(f"{path}.serviceAccountEmail is required when {path.rsplit('.', 1)[-1]} is set")
    return OidcToken(email, ws.string(obj.get("audience", ""), f"{path}.audience"))


def oauth_from_json(obj: Any, path: str) -> OAuthToken:
    """``oauthToken``: serviceAccountEmail (required) and scope."""
    obj = ws.obj(obj, path)
    email = ws.string(obj.get("serviceAccountEmail", ""), f"{path}.serviceAccountEmail")
    if not email:
        raise invalid(f"{path}.serviceAccountEmail is required when {path.rsplit('.', 1)[-1]} is set")
    return OAuthToken(email, ws.string(obj.get("scope", ""), f"{path}.scope"))


def oidc_to_json(token: OidcToken) -> Json:
    """An OIDC token setting as the API returns it."""
    return ws.compact({"serviceAccountEmail": token.service_account_email, "audience": token.audience})


def oauth_to_json(token: OAuthToken) -> Json:
    """An OAuth token setting as the API returns it."""
    return ws.compact({"serviceAccountEmail": token.service_account_email, "scope": token.scope})


# -- httpTarget ----------------------------------------------------------------------------

def _optional_string(obj: Json, key: str, inner: str, path: str) -> str | None:
    if key not in obj:
        return None
    section = ws.obj(obj[key] or {}, f"{path}.{key}")
    return ws.string(section.get(inner, ""), f"{path}.{key}.{inner}")


def uri_override_from_json(obj: Any, path: str) -> UriOverride:
    """``uriOverride``: scheme, host, port, pathOverride, queryOverride, enforce mode."""
    obj = ws.obj(obj, path)
    host = ws.string(obj["host"], f"{path}.host") if "host" in obj else None
    if host is not None and (not host or any(c in host for c in "/?#@ \r\n\0")):
        raise invalid(f"{path}.host must be a host name or address without scheme, path or spaces (got {host!r})")
    port = ws.number(obj["port"], f"{path}.port") if "port" in obj else None
    if port is not None and not 0 <= port <= 65535:
        raise invalid(f"{path}.port must be between 1 and 65535, or 0 to clear the port (got {port})")
    return UriOverride(
        scheme=ws.parse_enum(Scheme, obj.get("scheme", 0), f"{path}.scheme"),
        host=host, port=port,
        path=_optional_string(obj, "pathOverride", "path", path),
        query=_optional_string(obj, "queryOverride", "queryParams", path),
        mode=ws.parse_enum(EnforceMode, obj.get("uriOverrideEnforceMode", 0), f"{path}.uriOverrideEnforceMode"))


def uri_override_to_json(uri: UriOverride, int_enums: bool) -> Json:
    """A URI override as the API returns it."""
    out: Json = {"scheme": ws.format_enum(uri.scheme, int_enums) if uri.scheme else None, "host": uri.host,
                 "port": str(uri.port) if uri.port else None,
                 "uriOverrideEnforceMode": ws.format_enum(uri.mode, int_enums) if uri.mode else None}
    if uri.path is not None:
        out["pathOverride"] = ws.compact({"path": uri.path})
    if uri.query is not None:
        out["queryOverride"] = ws.compact({"queryParams": uri.query})
    return {k: v for k, v in out.items() if v is not None}


def _header_overrides(raw: Any, path: str) -> list[tuple[str, str]]:
    if not isinstance(raw, list):
        raise invalid(f"{path}: expected a list of {{\"header\": {{\"key\": ..., \"value\": ...}}}}")
    pairs = []
    for i, item in enumerate(raw):
        header = ws.obj(ws.obj(item, f"{path}[{i}]").get("header") or {}, f"{path}[{i}].header")
        key = ws.string(header.get("key", ""), f"{path}[{i}].header.key")
        value = ws.string(header.get("value", ""), f"{path}[{i}].header.value")
        ws.check_header(key, value, f"{path}[{i}].header")
        pairs.append((key, value))
    return pairs


def http_target_from_json(obj: Any, path: str = "queue.httpTarget") -> HttpTarget:
    """A queue's ``httpTarget``."""
    obj = ws.obj(obj, path)
    if obj.get("oidcToken") and obj.get("oauthToken"):
        raise invalid(f"{path}: set at most one of oidcToken and oauthToken")
    return HttpTarget(
        uri_override=uri_override_from_json(obj["uriOverride"], f"{path}.uriOverride") if obj.get("uriOverride") else None,
        http_method=ws.parse_enum(HttpMethod, obj.get("httpMethod", 0), f"{path}.httpMethod"),
        header_overrides=_header_overrides(obj.get("headerOverrides") or [], f"{path}.headerOverrides"),
        oidc_token=oidc_from_json(obj["oidcToken"], f"{path}.oidcToken") if obj.get("oidcToken") else None,
        oauth_token=oauth_from_json(obj["oauthToken"], f"{path}.oauthToken") if obj.get("oauthToken") else None)


def http_target_to_json(target: HttpTarget, int_enums: bool) -> Json:
    """A queue's ``httpTarget`` as the API returns it."""
    return ws.compact({
        "uriOverride": uri_override_to_json(target.uri_override, int_enums) if target.uri_override else None,
        "httpMethod": ws.format_enum(target.http_method, int_enums) if target.http_method else None,
        "headerOverrides": [{"header": {"key": k, "value": v}} for k, v in target.header_overrides],
        "oidcToken": oidc_to_json(target.oidc_token) if target.oidc_token else None,
        "oauthToken": oauth_to_json(target.oauth_token) if target.oauth_token else None,
    })


# -- App Engine routing and logging --------------------------------------------------------

def routing_from_json(obj: Any, path: str) -> AppEngineRouting:
    """``appEngineRouting`` / ``appEngineRoutingOverride`` (``host`` is output only)."""
    obj = ws.obj(obj, path)
    return AppEngineRouting(*(ws.string(obj.get(k, ""), f"{path}.{k}") for k in ("service", "version", "instance")))


def routing_to_json(routing: AppEngineRouting, host: str = "") -> Json:
    """Routing as the API returns it (with the host the emulator sends it to)."""
    return ws.compact({"service": routing.service, "version": routing.version, "instance": routing.instance,
                       "host": host})


def app_engine_host(task_name: str, routing: AppEngineRouting) -> str:
    """The host an App Engine task is sent to, built as Cloud Tasks builds ``appEngineRouting.host``:
    ``[instance.][version.][service.]PROJECT_ID.appspot.com`` (the app's default domain)."""
    project = task_name.split("/")[1]
    return ".".join([p for p in (routing.instance, routing.version, routing.service) if p] + [f"{project}.appspot.com"])


def sampling_ratio_from_json(obj: Any, path: str = "queue.stackdriverLoggingConfig") -> float:
    """``stackdriverLoggingConfig.samplingRatio``, between 0 and 1."""
    ratio = ws.number(ws.obj(obj, path).get("samplingRatio", 0.0), f"{path}.samplingRatio", float)
    if not 0.0 <= ratio <= 1.0:
        raise invalid(f"{path}.samplingRatio must be between 0.0 and 1.0 (got {ratio:g})")
    return ratio


# -- queue groups: output, and masked updates ----------------------------------------------

def groups_to_json(queue: Queue, int_enums: bool) -> Json:
    """The merged groups of ``queue`` as API JSON (absent when unset)."""
    out: Json = {}
    if queue.http_target is not None:
        out["httpTarget"] = http_target_to_json(queue.http_target, int_enums)
    if queue.app_engine_routing_override is not None:
        out["appEngineRoutingOverride"] = routing_to_json(queue.app_engine_routing_override)
    if queue.logging_sampling_ratio:
        out["stackdriverLoggingConfig"] = {"samplingRatio": queue.logging_sampling_ratio}
    return out


def _copy_path(target: Json, source: Json, parts: list[str]) -> None:
    """Set ``target`` at ``parts`` to ``source``'s value there (delete when absent)."""
    for part in parts[:-1]:
        source = source.get(part) if isinstance(source.get(part), dict) else {}
        if not isinstance(target.get(part), dict):
            target[part] = {}
        target = target[part]
    if parts[-1] in source:
        target[parts[-1]] = copy.deepcopy(source[parts[-1]])
    else:
        target.pop(parts[-1], None)


def apply_groups(queue: Queue, body: Json, paths: list[str], prefix: str = "queue") -> None:
    """Apply the masked paths that fall in the merged groups to ``queue`` (validated)."""
    wanted = [p for p in paths if p.split(".")[0] in MERGED_GROUPS]
    if not wanted:
        return
    merged = groups_to_json(queue, int_enums=False)
    for path in wanted:
        _copy_path(merged, body, path.split("."))
    http = merged.get("httpTarget")
    queue.http_target = http_target_from_json(http, f"{prefix}.httpTarget") if http else None
    routing = merged.get("appEngineRoutingOverride")
    queue.app_engine_routing_override = (routing_from_json(routing, f"{prefix}.appEngineRoutingOverride")
                                         if routing else None)
    logging = merged.get("stackdriverLoggingConfig")
    queue.logging_sampling_ratio = (sampling_ratio_from_json(logging, f"{prefix}.stackdriverLoggingConfig")
                                    if logging else 0.0)
