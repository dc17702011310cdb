"""``BlobStore`` over a Google Cloud Storage bucket.

Write-once with ``if_generation_match=0``: GCS creates the object only if no live generation
exists, atomically on its side, and answers 412 Precondition Failed otherwise. Uploads are
single-request (multipart), so an object is either complete or absent.

Error mapping: 412 → ``False`` (already there); 429 → ``Throttled``; 408, 5xx, connection,
timeout and credential-refresh failures → ``DependencyUnavailable``; other 4xx (no such
bucket, no permission) → ``Rejected`` with what to check.

The client's own retry is kept short (``retry``): Cloud Tasks already retries with backoff,
and a long in-process retry would outlive the task's dispatch deadline.
"""

from __future__ import annotations

from typing import Any

import requests
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exc
from google.cloud.storage.retry import DEFAULT_RETRY

from ordertasks.handlers.errors import DependencyUnavailable, OrderTasksError, Rejected, Throttled

SHORT_RETRY = DEFAULT_RETRY.with_timeout(20.0)
_TRANSIENT = (requests.RequestException, auth_exc.TransportError, auth_exc.RefreshError,
              gexc.RetryError, ConnectionError, TimeoutError)


class GcsBlobStore:
    """Objects in one GCS bucket; ``client`` is a ``google.cloud.storage.Client``."""

    def __init__(self, client: Any, bucket_name: str, retry: Retry | None = SHORT_RETRY,
                 timeout: float = 30.0) -> None:
        self.client, self.bucket_name = client, bucket_name
        self.bucket = client.bucket(bucket_name)
        self.retry, self.timeout = retry, timeout

    def put_once(self, path: str, data: bytes, content_type: str) -> bool:
        """Create ``path`` unless it exists; ``True`` if written now, ``False`` if it was there."""
        blob = self.bucket.blob(path)
        try:
            blob.upload_from_string(data, content_type=content_type, if_generation_match=0,
                                    timeout=self.timeout, retry=self.retry)
        except gexc.PreconditionFailed:
            return False
        except (gexc.GoogleAPICallError, *_TRANSIENT) as exc:
            raise self._error("write", path, exc) from exc
        return True

    def get(self, path: str) -> bytes | None:
        """The object's bytes, or ``None`` when it does not exist."""
        try:
            data: bytes = self.bucket.blob(path).download_as_bytes(timeout=self.timeout, retry=self.retry)
        except gexc.NotFound:
            return None
        except (gexc.GoogleAPICallError, *_TRANSIENT) as exc:
            raise self._error("read", path, exc) from exc
        return data

    def _error(self, action: str, path: str, exc: Exception) -> OrderTasksError:
        where = f"gs://{self.bucket_name}/{path}"
        if isinstance(exc, gexc.TooManyRequests):
            return Throttled(f"GCS throttled the {action} of {where}: {exc}")
        if isinstance(exc, gexc.ClientError) and exc.code != 408:
            return Rejected(f"GCS refused to {action} {where} ({exc.code}): {exc.message}; check that the "
                            "bucket exists and the handler's service account may create objects in it")
        return DependencyUnavailable(f"GCS unavailable to {action} {where}: {exc!r}")
