"""Which fields a REST request body may hold: the request message's own protobuf descriptor.

Google's front end refuses a JSON body naming a field its message does not have, before the
API sees it, with INVALID_ARGUMENT (400) and one line per unknown name::

    Invalid JSON payload received. Unknown name "bogusField" at 'task': Cannot find field.

The path is in proto field names (``task.http_request``, ``requests[0].task``) and left out
(``Unknown name "x": Cannot find field.``) for a field of the body itself; a
``google.rpc.BadRequest`` detail lists each violation.  A field may be named by its JSON name
(``httpRequest``) or its proto name (``http_request``), as proto3 JSON parsers accept.
Well-known types that JSON writes as scalars or free-form values (``google.protobuf.*``:
Timestamp, Duration, FieldMask, Struct, Any…) are not looked into.

gRPC requests pass this check trivially: protobuf cannot carry a name its message lacks.
"""

from __future__ import annotations

import functools
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from ordertasks.infra.emulator.errors import RpcError

Unknown = tuple[str, str]  # (the name as sent, the proto path of the message holding it)


@functools.lru_cache(maxsize=None)
def _fields(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    """A message's fields by JSON name and by proto name."""
    return {**{f.json_name: f for f in descriptor.fields}, **{f.name: f for f in descriptor.fields}}


def _opaque(descriptor: Descriptor) -> bool:
    return descriptor.full_name.startswith("google.protobuf.")


def unknown_names(value: Any, descriptor: Descriptor, path: str = "") -> list[Unknown]:
    """Every name in the JSON ``value`` that ``descriptor`` (and the messages inside it) lacks."""
    if not isinstance(value, dict) or _opaque(descriptor):
        return []
    found: list[Unknown] = []
    for name, item in value.items():
        field = _fields(descriptor).get(name)
        if field is None:
            found.append((name, path))
        elif field.message_type is not None:
            found += _inside(field, item, f"{path}.{field.name}" if path else field.name)
    return found


def _inside(field: FieldDescriptor, value: Any, path: str) -> list[Unknown]:
    """Unknown names inside one message-typed field (single, repeated or map)."""
    message = field.message_type
    if message.GetOptions().map_entry:
        inner = message.fields_by_name["value"].message_type
        if inner is None or not isinstance(value, dict):
            return []
        return [u for key, item in value.items() for u in unknown_names(item, inner, f"{path}[{key}]")]
    if field.is_repeated:
        items = value if isinstance(value, list) else []
        return [u for i, item in enumerate(items) for u in unknown_names(item, message, f"{path}[{i}]")]
    return unknown_names(value, message, path)


def with_json_names(value: Any, descriptor: Descriptor | None) -> Any:
    """``value`` with every proto field name (``http_request``) renamed to its JSON name
    (``httpRequest``), the one spelling the rest of the emulator reads."""
    if descriptor is None or not isinstance(value, dict) or _opaque(descriptor):
        return value
    out = {}
    for name, item in value.items():
        field = _fields(descriptor).get(name)
        out[field.json_name if field else name] = _renamed(field, item) if field and field.message_type else item
    return out


def _renamed(field: FieldDescriptor, value: Any) -> Any:
    message = field.message_type
    if message.GetOptions().map_entry:
        inner = message.fields_by_name["value"].message_type
        return {k: with_json_names(v, inner) for k, v in value.items()} if inner and isinstance(value, dict) else value
    if field.is_repeated:
        return [with_json_names(v, message) for v in value] if isinstance(value, list) else value
    return with_json_names(value, message)


def describe(name: str, path: str) -> str:
    """Google's line for one unknown name."""
    where = f" at '{path}'" if path else ""
    return f'Invalid JSON payload received. Unknown name "{name}"{where}: Cannot find field.'


def check_known(body: Any, descriptor: Descriptor | None) -> None:
    """Raise INVALID_ARGUMENT, worded as Google's front end, when ``body`` names unknown fields."""
    found = unknown_names(body, descriptor) if descriptor is not None else []
    if not found:
        return
    violations = [{"field": path, "description": describe(name, path)} if path else
                  {"description": describe(name, path)} for name, path in found]
    detail = {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations}
    raise RpcError("INVALID_ARGUMENT", "\n".join(describe(name, path) for name, path in found), details=[detail])
