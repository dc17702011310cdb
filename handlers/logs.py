"""Structured JSON log lines in Cloud Logging's format (one object per line on stdout).

Every message and text field is redacted (``handlers/redact.py``) before it is written:
exception text quoted into a log line can carry a URL's query string or a token.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from collections.abc import Mapping
from typing import Any, TextIO

from ordertasks.handlers.redact import redact

TRACE_KEY = "logging.googleapis.com/trace"


def trace_field(header: str | None, project: str) -> str | None:
    """``projects/P/traces/T`` from an ``X-Cloud-Trace-Context: T/S;o=1`` header."""
    if not header:
        return None
    trace_id = header.split("/", 1)[0].strip()
    return f"projects/{project}/traces/{trace_id}" if trace_id else None


def log_line(severity: str, message: str, extra: Mapping[str, Any] | None = None,
             stream: TextIO | None = None, **fields: Any) -> None:
    """Write one JSON log entry, secrets redacted; ``extra`` holds keys that are not identifiers
    (the trace field); ``None`` values are left out."""
    entry = {"severity": severity, "message": redact(message), "time": datetime.now(timezone.utc).isoformat()}
    entry.update({k: redact(v) if isinstance(v, str) else v
                  for k, v in {**(extra or {}), **fields}.items() if v is not None})
    out = stream or sys.stdout
    out.write(json.dumps(entry, default=str) + "\n")
    out.flush()
