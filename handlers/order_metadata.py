"""The shop's own data on an order: ``metadata``, a JSON object kept in the stored snapshot.

A kind reads it as ``task.order.metadata`` (a webhook kind posts it with the order). What it
may hold is what every store keeps exactly, in JSON, SQLite and Firestore alike:

- a JSON object whose keys are strings of 1 to 128 characters, none of the form ``__x__``
  (Firestore reserves those);
- values: strings, whole numbers (64-bit: Firestore's integers), finite floats (NaN and
  infinity are not JSON), ``true``/``false``, ``null``, arrays and nested objects;
- an array may not hold an array directly (Firestore cannot store one): wrap the inner one in
  an object;
- at most ``MAX_KEYS`` (50) keys at the top, ``MAX_DEPTH`` (8) levels of nesting, and
  ``MAX_BYTES`` (16 KiB) as compact UTF-8 JSON. Bigger data belongs in the shop's own store,
  with its id here.

``check_metadata(value)`` returns a plain copy (tuples become lists) or raises ``ValueError``
saying where and what to send instead.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

MAX_KEYS = 50
MAX_DEPTH = 8
MAX_BYTES = 16 * 1024
MAX_KEY_LENGTH = 128
_INT64 = range(-(2 ** 63), 2 ** 63)
_RESERVED_KEY = re.compile(r"^__.*__$")


def check_metadata(value: Any) -> dict[str, Any]:
    """``value`` as checked metadata (see the module docstring); ``ValueError`` otherwise."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a JSON object of the shop's own values, not {_type_name(value)}")
    if len(value) > MAX_KEYS:
        raise ValueError(f"has {len(value)} keys; at most {MAX_KEYS}: nest related values in an object")
    checked = _object(value, "", 1)
    size = len(json.dumps(checked, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_BYTES:
        raise ValueError(f"is {size} bytes as JSON; at most {MAX_BYTES} (16 KiB): keep bigger data in your "
                         "own store and put its id here")
    return checked


def _object(value: Mapping[Any, Any], path: str, depth: int) -> dict[str, Any]:
    return {_key(key, path): _value(item, f"{path}.{key}" if path else str(key), depth)
            for key, item in value.items()}


def _key(key: Any, path: str) -> str:
    where = f" in {path}" if path else ""
    if not isinstance(key, str):
        raise ValueError(f"key {key!r}{where} must be a string")
    if not 0 < len(key) <= MAX_KEY_LENGTH or _RESERVED_KEY.fullmatch(key):
        raise ValueError(f"key {key[:40]!r}{where} must be 1 to {MAX_KEY_LENGTH} characters and not __name__")
    return key


def _value(value: Any, path: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ValueError(f"{path} is nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float, str)):
        return _scalar(value, path)
    if isinstance(value, Mapping):
        return _object(value, path, depth + 1)
    if isinstance(value, (list, tuple)):
        return [_element(item, f"{path}[{n}]", depth + 1) for n, item in enumerate(value)]
    raise ValueError(f"{path} is {_type_name(value)}, not a JSON value: send a string, number, true/false, "
                     "null, array or object (money and times as strings)")


def _element(value: Any, path: str, depth: int) -> Any:
    if isinstance(value, (list, tuple)):
        raise ValueError(f"{path} is an array inside an array, which Firestore cannot store: wrap it in an "
                         'object, e.g. {"values": [...]}')
    return _value(value, path, depth)


def _scalar(value: int | float | str, path: str) -> int | float | str:
    if isinstance(value, str):
        if not _encodable(value):
            raise ValueError(f"{path} is not valid unicode text (a lone surrogate)")
        return value
    if isinstance(value, int) and value not in _INT64:
        raise ValueError(f"{path} is outside the 64-bit integer range: send it as a string")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path} is {value}: JSON has no NaN or infinity; send a finite number or a string")
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode()
        return True
    except UnicodeEncodeError:
        return False


def _type_name(value: Any) -> str:
    return f"a {type(value).__name__}"
