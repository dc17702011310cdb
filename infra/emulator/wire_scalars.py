"""Scalars of the Cloud Tasks JSON wire format: durations, timestamps, enums, numbers,
strings, objects and HTTP header fields, each parsed strictly with INVALID_ARGUMENT naming
the field, and formatted as proto3 JSON does.

Sizes are bounded before conversion (a 5000-digit number is refused, not converted), and
integers are kept inside the range of their protobuf type, so whatever is accepted can also
be answered over gRPC.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import re
from typing import Any, TypeVar

from ordertasks.infra.emulator.errors import invalid

E = TypeVar("E", bound=enum.IntEnum)
# Seconds up to 12 digits: protobuf's Duration tops out at 315,576,000,000 s.
_DURATION = re.compile(r"^(-?)(\d{1,12})(?:\.(\d{1,9}))?s$")
_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?([Zz]|[+-]\d\d:\d\d)$")
_INTEGER = re.compile(r"^-?[0-9]{1,20}$")
INT32 = (-2**31, 2**31 - 1)
INT64 = (-2**63, 2**63 - 1)
# RFC 9110 token characters: what a header name may contain.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
Json = dict[str, Any]


def parse_duration(value: Any, path: str) -> float:
    """``"600s"`` / ``"0.100s"`` -> seconds; INVALID_ARGUMENT naming ``path`` otherwise."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise invalid(f"{path}: invalid duration {_short(value)}; use seconds with an 's' suffix, e.g. \"10s\" or \"0.5s\"")
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
        raise invalid(f"{path}: invalid timestamp {_short(value)}; use RFC 3339, e.g. \"2030-01-02T03:04:05Z\"")
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
    text = _whole_seconds(whole)
    return f"{text}.{frac:06d}Z" if frac else f"{text}Z"


@functools.lru_cache(maxsize=4096)
def _whole_seconds(whole: int) -> str:
    # A task's times (created, scheduled, attempted) fall in few distinct seconds: strftime is
    # most of the cost of formatting one.
    return dt.datetime.fromtimestamp(whole, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


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


def number(value: Any, path: str, kind: type = int, bounds: tuple[int, int] = INT32) -> Any:
    """A proto3 JSON number (which may arrive as a string); integers within ``bounds``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) or (isinstance(value, str) and len(value) > 40):
        raise invalid(f"{path}: expected a number, got {_short(value)}")
    if kind is int:
        return _integer(value, path, bounds)
    try:
        return float(value)
    except ValueError:
        raise invalid(f"{path}: expected a number, got {_short(value)}") from None


def _integer(value: int | float | str, path: str, bounds: tuple[int, int]) -> int:
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")) or value != int(value):
            raise invalid(f"{path}: expected an integer, got {value!r}")
        value = int(value)
    elif isinstance(value, str):
        if not _INTEGER.match(value):
            raise invalid(f"{path}: expected an integer, got {_short(value)}")
        value = int(value)
    if not bounds[0] <= value <= bounds[1]:
        raise invalid(f"{path}: {value} is out of range ({bounds[0]} to {bounds[1]})")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def obj(value: Any, path: str) -> Json:
    if not isinstance(value, dict):
        raise invalid(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise invalid(f"{path}: expected a string, got {type(value).__name__}")
    return value


def compact(obj: Json) -> Json:
    """Drop proto3 default values (None, 0, "", empty containers), as the real API does."""
    return {k: v for k, v in obj.items() if v not in (None, 0, "", {}, [])}




def check_header(name: str, value: str, path: str) -> None:
    """A header that can go on the wire: a token name, a value without CR, LF or NUL."""
    if not _HEADER_NAME.match(name):
        raise invalid(f"{path}: invalid header name {_short(name)}; use letters, digits and !#$%&'*+.^_`|~- "
                      "(no spaces, colons or control characters)")
    if any(c in value for c in "\r\n\0") or len(value) > 8192:
        raise invalid(f"{path}: invalid value for header {name!r}: no CR, LF or NUL, at most 8192 characters")
