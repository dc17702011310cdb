"""``WarehouseClient`` over HTTP (requests, one pooled ``Session`` per client).

Status mapping (design.md, "Warehouse"):

    2xx                      → done: {"status", "warehouse_ref"}
    409                      → done: the warehouse already has this Idempotency-Key
    429                      → Throttled(retry_after from Retry-After: seconds or HTTP-date)
    other 4xx                → Rejected (status + a short body excerpt)
    5xx, timeout, connection → DependencyUnavailable
"""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from handlers.errors import DependencyUnavailable, Rejected, Throttled
from handlers.ports import Clock
from handlers.registry import SystemClock

EXCERPT_CHARS = 200


class HttpWarehouseClient:
    """POST order notifications to the warehouse API at ``url``."""

    def __init__(self, url: str, timeout: float, token: str | None = None,
                 session: requests.Session | None = None, clock: Clock | None = None) -> None:
        self.url, self.timeout, self.token = url, timeout, token
        self.session = session or requests.Session()
        self.clock = clock or SystemClock()

    def notify(self, idempotency_key: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST ``payload`` as JSON with ``Idempotency-Key``; see the module docstring for outcomes."""
        try:
            response = self.session.post(self.url, json=payload, headers=self._headers(idempotency_key),
                                         timeout=self.timeout)
        except requests.Timeout as exc:
            raise DependencyUnavailable(f"warehouse {self.url} did not answer within {self.timeout}s") from exc
        except requests.RequestException as exc:
            raise DependencyUnavailable(f"warehouse {self.url} unreachable: {exc}") from exc
        return self._result(response)

    def _headers(self, idempotency_key: str) -> dict[str, str]:
        headers = {"Idempotency-Key": idempotency_key, "Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _result(self, response: requests.Response) -> dict[str, Any]:
        status = response.status_code
        if 200 <= status < 300 or status == 409:
            result = {"status": status, "warehouse_ref": _reference(response)}
            return result | ({"already_received": True} if status == 409 else {})
        if status == 429:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"), self.clock.now())
            raise Throttled(f"warehouse {self.url} answered 429 Too Many Requests", retry_after=retry_after)
        if 400 <= status < 500:
            raise Rejected(f"warehouse {self.url} refused the notification with {status}: {_excerpt(response)}")
        raise DependencyUnavailable(f"warehouse {self.url} answered {status}: {_excerpt(response)}")


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())


def _reference(response: requests.Response) -> str | None:
    """The warehouse's id for the notification, when the body is JSON with ``id``."""
    try:
        body = response.json()
    except ValueError:
        return None
    ref = body.get("id") if isinstance(body, dict) else None
    return str(ref) if ref is not None else None


def _excerpt(response: requests.Response) -> str:
    text = " ".join(response.text.split())
    return text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")
