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

from datetime import datetime
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

    def created_at(self, path: str) -> datetime | None:
        """The object's creation time, or ``None`` (a metadata GET; the bytes are not downloaded)."""
        try:
            blob = self.bucket.get_blob(path, timeout=self.timeout, retry=self.retry)
        except (gexc.GoogleAPICallError, *_TRANSIENT) as exc:
            raise self._error("look up", path, exc) from exc
        return None if blob is None else blob.time_created

    def count(self, prefix: str, created_since: datetime | None = None) -> int:
        """Objects under ``prefix`` (created at or after ``created_since``): a listing, names and
        creation times only, one request per 1000 objects."""
        try:
            blobs = self.client.list_blobs(self.bucket_name, prefix=prefix, fields="items(name,timeCreated),nextPageToken",
                                           timeout=self.timeout, retry=self.retry)
            return sum(1 for blob in blobs if created_since is None or blob.time_created >= created_since)
        except (gexc.GoogleAPICallError, *_TRANSIENT) as exc:
            raise self._error("list", prefix, exc) from exc

    def _error(self, action: str, path: str, exc: Exception) -> OrderTasksError:
        where = f"gs://{self.bucket_name}/{path}"
        if isinstance(exc, gexc.TooManyRequests):
            return Throttled(f"GCS throttled the {action} of {where}: {exc}")
        if isinstance(exc, gexc.ClientError) and exc.code != 408:
            return Rejected(f"GCS refused to {action} {where} ({exc.code}): {exc.message}; check that the "
                            "bucket exists and the handler's service account may create objects in it")
        return DependencyUnavailable(f"GCS unavailable to {action} {where}: {exc!r}")
