"""``WebhookClient`` over HTTP (requests, one pooled ``Session`` per client).

Every webhook kind (the warehouse notification is one) goes through this one client.
Status mapping:

    2xx                      → done: {"status", "reference"} (the far end's "id", if it sent one)
    409                      → done: the far end already has this Idempotency-Key
    429                      → Throttled(retry_after from Retry-After: seconds or HTTP-date)
    other 4xx                → Rejected (status + the first 500 bytes of the answer)
    5xx, timeout, connection → DependencyUnavailable
"""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from ordertasks.handlers.errors import DependencyUnavailable, Rejected, Throttled
from ordertasks.handlers.ports import Clock
from ordertasks.handlers.kind import SystemClock

EXCERPT_BYTES = 500


class HttpWebhookClient:
    """POST a kind's data as JSON to ``url`` (``name`` says whose endpoint it is in messages)."""

    def __init__(self, url: str, timeout: float, token: str | None = None,
                 session: requests.Session | None = None, clock: Clock | None = None,
                 name: str = "webhook") -> None:
        self.url, self.timeout, self.token, self.name = url, timeout, token, name
        self.session = session or requests.Session()
        self.clock = clock or SystemClock()

    def post(self, idempotency_key: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST ``payload`` as JSON with ``Idempotency-Key``; see the module docstring for outcomes."""
        try:
            response = self.session.post(self.url, json=payload, headers=self._headers(idempotency_key),
                                         timeout=self.timeout)
        except requests.Timeout as exc:
            raise DependencyUnavailable(f"{self.name} {self.url} did not answer within {self.timeout}s") from exc
        except requests.RequestException as exc:
            raise DependencyUnavailable(f"{self.name} {self.url} unreachable: {exc}") from exc
        return self._result(response)

    notify = post  # the warehouse client's old method name

    def _headers(self, idempotency_key: str) -> dict[str, str]:
        headers = {"Idempotency-Key": idempotency_key, "Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _result(self, response: requests.Response) -> dict[str, Any]:
        status = response.status_code
        if 200 <= status < 300 or status == 409:
            result = {"status": status, "reference": _reference(response)}
            return result | ({"already_received": True} if status == 409 else {})
        if status == 429:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"), self.clock.now())
            raise Throttled(f"{self.name} {self.url} answered 429 Too Many Requests", retry_after=retry_after)
        if 400 <= status < 500:
            raise Rejected(f"{self.name} {self.url} refused the request with {status}: {_excerpt(response)}")
        raise DependencyUnavailable(f"{self.name} {self.url} answered {status}: {_excerpt(response)}")


HttpWarehouseClient = HttpWebhookClient


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
    """The first 500 bytes of the answer, white space folded (enough to see why it refused)."""
    head = response.content[:EXCERPT_BYTES].decode("utf-8", errors="replace")
    text = " ".join(head.split())
    return text + ("…" if len(response.content) > EXCERPT_BYTES else "")
