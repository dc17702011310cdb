"""The checkout API's error answer: ``{"error": {"code", "message", "fields"}}``.

``ApiError`` carries the HTTP status with it, so the order flow can say "402, declined" and
the Flask layer turns every error, expected or not, into the same JSON shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ordertasks.handlers.errors import OrderTasksError


def error_body(code: str, message: str, fields: Sequence[Mapping[str, str]] = (),
               extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body of every error answer; ``extra`` adds members to ``error`` (e.g. ``prices``)."""
    return {"error": {"code": code, "message": message, "fields": [dict(f) for f in fields], **(extra or {})}}


class ApiError(OrderTasksError):
    """An answer other than success, with its status, a stable code and a helpful message."""

    def __init__(self, status: int, code: str, message: str, fields: Sequence[Mapping[str, str]] = (),
                 headers: Mapping[str, str] | None = None, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields)
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        """This error as the API's JSON body."""
        return error_body(self.code, self.message, self.fields, self.extra)
