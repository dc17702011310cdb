"""A TOML writer for the values a task catalog holds, so deploy can stage one flattened catalog.

A catalog that ``extends`` others is deployed as the one document ``catalog_document`` merges:
the function then reads a single file and needs none of the base files. No TOML writer ships
with Python, and the catalog's value types are few: tables, arrays of tables, strings,
booleans, integers, floats, dates and times, and arrays of those. ``dumps`` writes them and
reads its own output back: a value it cannot write faithfully stops it (``ValueError``)
instead of changing the catalog on its way to the cloud.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from typing import Any

BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(name: str) -> str:
    return name if BARE_KEY.match(name) else json.dumps(name, ensure_ascii=False)


def _float(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


def value(item: Any) -> str:
    """One value as TOML (a table inside an array is written inline)."""
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int):
        return str(item)
    if isinstance(item, float):
        return _float(item)
    if isinstance(item, str):
        # JSON string escapes are TOML basic-string escapes for every character JSON escapes.
        return json.dumps(item, ensure_ascii=False)
    if isinstance(item, (datetime.datetime, datetime.date, datetime.time)):
        return item.isoformat()
    if isinstance(item, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {value(v)}" for k, v in item.items()) + "}"
    if isinstance(item, list):
        return "[" + ", ".join(value(v) for v in item) + "]"
    raise ValueError(f"cannot write a {type(item).__name__} as TOML")


def _is_table_array(item: Any) -> bool:
    return isinstance(item, list) and bool(item) and all(isinstance(v, Mapping) for v in item)


def _table(path: tuple[str, ...], table: Mapping[str, Any]) -> Iterator[str]:
    """``[path]`` with its plain keys, then its sub-tables and arrays of tables."""
    plain = {k: v for k, v in table.items() if not isinstance(v, Mapping) and not _is_table_array(v)}
    if path and (plain or not any(isinstance(v, Mapping) for v in table.values())):
        yield "[" + ".".join(_key(p) for p in path) + "]"
    yield from (f"{_key(k)} = {value(v)}" for k, v in plain.items())
    if plain or path:
        yield ""
    for key, item in table.items():
        if isinstance(item, Mapping):
            yield from _table((*path, key), item)
        elif _is_table_array(item):
            for entry in item:
                yield "[[" + ".".join(_key(p) for p in (*path, key)) + "]]"
                yield from (f"{_key(k)} = {value(v)}" for k, v in entry.items())
                yield ""


def dumps(document: Mapping[str, Any], header: str = "") -> str:
    """``document`` as TOML text that ``tomllib`` reads back as ``document``; ``ValueError`` otherwise."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    text = "\n".join([*lines, *([""] if lines else []), *_table((), document)]).rstrip("\n") + "\n"
    if tomllib.loads(text) != document:
        raise ValueError("the catalog holds a value this writer cannot reproduce")
    return text
