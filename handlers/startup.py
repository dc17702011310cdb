"""What an entry point answers when it cannot build itself: 503 with ``Retry-After``, never a 500.

The task handler (``functions/main.py``) and the maintenance endpoint (``producer/maintenance.py``)
build themselves on their first request. A build that fails — a bad setting, a store that is
locked or full, anything unexpected — is logged once, naming what failed, and answered 503 with
``Retry-After`` so Cloud Tasks and Cloud Scheduler try again; the body names the kind of cause,
never a traceback.
"""

from __future__ import annotations

from typing import Any

from ordertasks.handlers.errors import ConfigurationError, DependencyUnavailable
from ordertasks.handlers.logs import log_line

CONFIG_RETRY_AFTER = 60          # a setting must be fixed and the service redeployed
DEPENDENCY_RETRY_AFTER = 30      # a store or relay may be back soon
UNEXPECTED_RETRY_AFTER = 60


def startup_cause(exc: Exception) -> tuple[str, str, int]:
    """Severity, the caller's one-line cause and the ``Retry-After`` seconds for a failed build."""
    if isinstance(exc, ConfigurationError):
        return "CRITICAL", "it is misconfigured (its log names the setting)", CONFIG_RETRY_AFTER
    if isinstance(exc, DependencyUnavailable):
        wait = max(1, int(exc.retry_after or DEPENDENCY_RETRY_AFTER))
        return "ERROR", "a dependency is unavailable (its log names it)", wait
    return "ERROR", "an unexpected error (its log names it)", UNEXPECTED_RETRY_AFTER


def startup_failure(what: str, exc: Exception) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Log the failed build of ``what`` (``handler``, ``maintenance``) once; its answer as
    (status 503, JSON body, headers with ``Retry-After``)."""
    severity, cause, retry_after = startup_cause(exc)
    log_line(severity, f"{what} not started: {type(exc).__name__}: {exc}", {}, error_type=type(exc).__name__,
             status=503, retry_after=retry_after)
    return 503, {"error": f"the {what} could not start: {cause}; retry later"}, {"Retry-After": str(retry_after)}
