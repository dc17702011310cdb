"""In-memory far ends: the invoice bucket, the SMTP relay and webhook targets, in one process.

What ``ordertasks.testing`` gives the built-in kinds instead of GCS (or a local directory),
SMTP and HTTP, so every kind of a catalog runs in a unit test and its effects can be read
back: ``MemoryBlobStore`` honours the ``BlobStore`` port (write-once, checked by the same
contract tests as the local directory and GCS), ``MemoryMailer`` keeps every message it was
given, ``MemoryWebhook`` records every POST and answers 200 (or what ``answer`` says).

For tests and single-process experiments only: nothing survives the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from ordertasks.handlers.ports import Clock


class MemoryBlobStore:
    """Write-once objects in a dictionary, each with its creation time from ``clock``."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._objects: dict[str, tuple[bytes, str, datetime]] = {}
        self._lock = threading.Lock()

    def put_once(self, path: str, data: bytes, content_type: str) -> bool:
        """Create ``path`` unless it exists: ``True`` if written now, ``False`` if it was there."""
        with self._lock:
            if path in self._objects:
                return False
            self._objects[path] = (bytes(data), content_type, self.clock.now())
            return True

    def get(self, path: str) -> bytes | None:
        """The object's bytes, or ``None``."""
        found = self._objects.get(path)
        return None if found is None else found[0]

    def created_at(self, path: str) -> datetime | None:
        """When ``path`` was created, or ``None``."""
        found = self._objects.get(path)
        return None if found is None else found[2]

    def count(self, prefix: str, created_since: datetime | None = None) -> int:
        """Objects under ``prefix`` (created at or after ``created_since``)."""
        return sum(1 for path, (_, _, at) in list(self._objects.items())
                   if path.startswith(prefix) and (created_since is None or at >= created_since))

    def content_type(self, path: str) -> str | None:
        """The object's content type, or ``None``."""
        found = self._objects.get(path)
        return None if found is None else found[1]

    def paths(self, prefix: str = "") -> list[str]:
        """Every object's path under ``prefix``, sorted."""
        return sorted(path for path in list(self._objects) if path.startswith(prefix))


class MemoryMailer:
    """Keeps each message it is asked to send, in order (``sent``)."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []
        self._lock = threading.Lock()

    def send(self, message: Any) -> None:
        """Keep ``message`` (an ``email.message.EmailMessage``)."""
        with self._lock:
            self.sent.append(message)


@dataclass(frozen=True)
class WebhookCall:
    """One POST a webhook kind made: to which kind's target, with which key and payload."""

    kind: str
    idempotency_key: str
    payload: dict[str, Any]


Answer = Callable[[WebhookCall], dict[str, Any]]


def accepted(call: WebhookCall) -> dict[str, Any]:
    """The default answer: what the HTTP client returns for a 200."""
    return {"status": 200, "reference": None}


class MemoryWebhook:
    """One kind's webhook target: records each call in ``calls`` (shared by every kind), then
    returns ``answer(call)``; an ``answer`` that raises ``RetryableError`` or ``PermanentError``
    behaves as a 5xx or a 4xx of the real client would."""

    def __init__(self, kind: str, calls: list[WebhookCall], answer: Answer = accepted) -> None:
        self.kind, self.calls, self.answer = kind, calls, answer

    def post(self, idempotency_key: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Record the POST and answer it."""
        call = WebhookCall(self.kind, idempotency_key, payload)
        self.calls.append(call)
        return self.answer(call)
