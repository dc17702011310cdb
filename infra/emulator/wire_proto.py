"""proto3 JSON to and from protobuf messages, for the gRPC transport.

Requests: :func:`request_json` is ``json_format.MessageToDict`` for the fields Cloud Tasks
requests hold (strings, enums, bytes, maps, repeated and nested messages, Timestamp and
Duration) and hands anything else (``Any``, ``FieldMask``, floats…) to ``MessageToDict`` for
the whole message; ``tests/emulator/test_wire_proto.py`` holds the two equal.

Answers:

``json_format.ParseDict`` is protobuf's own parser and the reference; it is also pure Python
and general, and its Timestamp parsing goes through ``strptime``: ~30 µs of a sequential
``CreateTask``'s answer.  The service's answers use a small subset of proto3 JSON (the
emulator writes them itself: ``wire_scalars``' timestamps and durations, enum names or
numbers, base64 bytes, maps, repeated fields), so :func:`parse_answer` converts that subset
directly and hands anything else (``Any``, ``Struct``, a timestamp with an offset…) to
``ParseDict``, for the whole message.  For every answer the service writes the result is
what ``ParseDict`` gives (``tests/emulator/test_wire_proto.py`` holds the two to the same
answers, captured from every RPC of the surface tests).
"""

from __future__ import annotations

import base64
import calendar
import datetime
import functools
from typing import Any

from google.protobuf import descriptor, json_format, message

_TIMESTAMP, _DURATION = "google.protobuf.Timestamp", "google.protobuf.Duration"
_DIRECT_MESSAGES = {_TIMESTAMP, _DURATION}
FD = descriptor.FieldDescriptor
_INT64 = {FD.TYPE_INT64, FD.TYPE_UINT64, FD.TYPE_SINT64, FD.TYPE_FIXED64, FD.TYPE_SFIXED64}
_INT32 = {FD.TYPE_INT32, FD.TYPE_UINT32, FD.TYPE_SINT32, FD.TYPE_FIXED32, FD.TYPE_SFIXED32}


class _Unsupported(Exception):
    """This value needs ``json_format``."""


def request_json(request: message.Message) -> dict[str, Any]:
    """``json_format.MessageToDict(request)``, computed directly where it can be."""
    try:
        return _to_json(request)
    except _Unsupported:
        return json_format.MessageToDict(request)  # type: ignore[no-any-return]


def _to_json(msg: message.Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, value in msg.ListFields():
        message_type = field.message_type
        if message_type is not None and message_type.GetOptions().map_entry:
            out[field.json_name] = _map_json(message_type, value)
        elif field.is_repeated:
            out[field.json_name] = [_value_json(field, item) for item in value]
        else:
            out[field.json_name] = _value_json(field, value)
    return out


def _map_json(entry: descriptor.Descriptor, value: Any) -> dict[str, Any]:
    if entry.fields_by_name["key"].type != FD.TYPE_STRING:
        raise _Unsupported(entry.full_name)
    value_field = entry.fields_by_name["value"]
    return {key: _value_json(value_field, item) for key, item in value.items()}


def _value_json(field: FD, value: Any) -> Any:
    kind = field.type
    if kind == FD.TYPE_MESSAGE:
        name = field.message_type.full_name
        if name in _DIRECT_MESSAGES:
            return value.ToJsonString()
        if name.startswith("google.protobuf."):
            raise _Unsupported(name)
        return _to_json(value)
    if kind == FD.TYPE_STRING or kind == FD.TYPE_BOOL:
        return value
    if kind == FD.TYPE_ENUM:
        known = field.enum_type.values_by_number.get(value)
        return known.name if known is not None else value
    if kind == FD.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    if kind in _INT64:
        return str(value)
    if kind in _INT32:
        return value
    raise _Unsupported(field.full_name)  # floats: json_format's rounding and special values


def parse_answer(answer: dict[str, Any], target: message.Message) -> message.Message:
    """Fill ``target`` from the proto3 JSON ``answer``; unknown fields are ignored, as the
    gRPC transport has always done (``ParseDict(..., ignore_unknown_fields=True)``)."""
    try:
        _fill(target, answer)
    except (_Unsupported, ValueError, TypeError, KeyError, AttributeError):
        target.Clear()
        json_format.ParseDict(answer, target, ignore_unknown_fields=True)
    return target


@functools.cache
def _fields(desc: descriptor.Descriptor) -> dict[str, FD]:
    by_name: dict[str, FD] = {}
    for field in desc.fields:
        by_name[field.name] = by_name[field.json_name] = field
    return by_name


def _fill(target: message.Message, data: Any) -> None:
    desc = target.DESCRIPTOR
    if desc.full_name in _DIRECT_MESSAGES:
        _fill_well_known(target, data)
        return
    if desc.full_name.startswith("google.protobuf.") or not isinstance(data, dict):
        raise _Unsupported(desc.full_name)
    fields = _fields(desc)
    for key, value in data.items():
        field = fields.get(key)
        if field is not None and value is not None:
            _set(target, field, value)


def _set(target: message.Message, field: FD, value: Any) -> None:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        _set_map(getattr(target, field.name), field.message_type, value)
    elif field.is_repeated:
        _set_repeated(getattr(target, field.name), field, value)
    elif field.type == FD.TYPE_MESSAGE:
        child = getattr(target, field.name)
        child.SetInParent()  # present even when empty, as ParseDict leaves it
        _fill(child, value)
    else:
        setattr(target, field.name, _scalar(field, value))


def _set_repeated(container: Any, field: FD, values: Any) -> None:
    if not isinstance(values, list):
        raise _Unsupported(field.full_name)
    if field.type == FD.TYPE_MESSAGE:
        for value in values:
            _fill(container.add(), value)
    else:
        container.extend(_scalar(field, value) for value in values)


def _set_map(container: Any, entry: descriptor.Descriptor, values: Any) -> None:
    if not isinstance(values, dict):
        raise _Unsupported(entry.full_name)
    value_field = entry.fields_by_name["value"]
    if value_field.type != FD.TYPE_STRING or entry.fields_by_name["key"].type != FD.TYPE_STRING:
        raise _Unsupported(entry.full_name)
    for key, value in values.items():
        if not isinstance(value, str):
            raise _Unsupported(entry.full_name)
        container[key] = value


def _scalar(field: FD, value: Any) -> Any:
    kind = field.type
    if kind == FD.TYPE_ENUM:
        return field.enum_type.values_by_name[value].number if isinstance(value, str) else int(value)
    if kind == FD.TYPE_BYTES:
        return _bytes(value)
    if kind == FD.TYPE_STRING:
        if not isinstance(value, str):
            raise _Unsupported(field.full_name)
        return value
    if kind == FD.TYPE_BOOL:
        if not isinstance(value, bool):
            raise _Unsupported(field.full_name)
        return value
    if kind in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _Unsupported(field.full_name)
    return int(value)


def _bytes(value: Any) -> bytes:
    if not isinstance(value, str):
        raise _Unsupported("bytes")
    text = value.encode("ascii")
    padded = text + b"=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded) if b"-" in text or b"_" in text else base64.b64decode(padded)


def _fill_well_known(target: Any, value: Any) -> None:
    if not isinstance(value, str):
        raise _Unsupported(target.DESCRIPTOR.full_name)
    if target.DESCRIPTOR.full_name == _TIMESTAMP:
        target.seconds, target.nanos = _timestamp(value)
    else:
        target.seconds, target.nanos = _duration(value)


def _timestamp(value: str) -> tuple[int, int]:
    """``YYYY-MM-DDTHH:MM:SS[.fraction]Z`` (what ``format_timestamp`` writes) as seconds and nanos."""
    if len(value) < 20 or value[-1] != "Z" or value[10] != "T" or value[4] != "-" or value[7] != "-":
        raise _Unsupported(_TIMESTAMP)
    whole, _, fraction = value[:-1].partition(".")
    if len(whole) != 19 or len(fraction) > 9 or (fraction and not fraction.isdigit()):
        raise _Unsupported(_TIMESTAMP)
    fields = (whole[0:4], whole[5:7], whole[8:10], whole[11:13], whole[14:16], whole[17:19])
    if not all(part.isdigit() for part in fields) or whole[13] != ":" or whole[16] != ":":
        raise _Unsupported(_TIMESTAMP)
    year, month, day, hour, minute, second = map(int, fields)
    datetime.date(year, month, day)  # ValueError for a day that does not exist: ParseDict decides
    if hour > 23 or minute > 59 or second > 59:
        raise _Unsupported(_TIMESTAMP)
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    return seconds, int(fraction.ljust(9, "0")) if fraction else 0


def _duration(value: str) -> tuple[int, int]:
    """``Ns`` / ``N.fractions`` (non-negative, as ``format_duration`` writes them) as seconds and nanos."""
    if not value.endswith("s"):
        raise _Unsupported(_DURATION)
    whole, _, fraction = value[:-1].partition(".")
    if not whole.isdigit() or len(fraction) > 9 or (fraction and not fraction.isdigit()):
        raise _Unsupported(_DURATION)
    return int(whole), int(fraction.ljust(9, "0")) if fraction else 0
