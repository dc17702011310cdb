"""The ordertasks error tree, in one place.

    OrderTasksError
    ├── ConfigurationError          settings or catalog are wrong; fix config, not data
    │   ├── CatalogError            the task catalog file is invalid (names file and line)
    │   ├── TaxTableError           producer.tax_rules: the tax table file is invalid
    │   ├── CatalogueFileError      producer.products: a price-book import file is invalid
    │   ├── ReplayTargetUnknown     producer.replay_target: no handler URL to replay to
    │   └── CloudConfigError        infra.deploy: the catalog's [cloud] section is incomplete
    ├── RetryableError              try again later (Cloud Tasks retries on 503)
    │   ├── DependencyUnavailable   SMTP, warehouse, store or bucket down / 5xx / timeout
    │   ├── Throttled               429 from a dependency (``retry_after`` seconds if known)
    │   └── LeaseHeld               a concurrent delivery holds the claim on this effect
    ├── PermanentError              retrying cannot help; goes to the failed-task log
    │   ├── InvalidPayload          body is not a valid task envelope for its kind
    │   ├── UnknownTaskKind         ``kind`` is not one the handler serves
    │   ├── UnknownOrder            the task names an order that was never placed
    │   ├── Rejected                a dependency refused the request (e.g. warehouse 4xx)
    │   └── TaskVanished            Cloud Tasks gave up on the task before the handler answered
    │                               (recorded by the auditor, ``producer.audit``)
    ├── AuthError                   the caller, not the task (never in the failed-task log)
    │   ├── Unauthenticated         401
    │   └── Forbidden               403
    ├── PaymentError                producer.payments: PaymentDeclined, PaymentUnavailable,
    │                               PaymentRequiresAction
    ├── ApiError                    producer.api_errors: a checkout answer other than success
    ├── OrderNotFound, OrderConflict   producer.library (also LookupError / ValueError)
    ├── UnsupportedCountry, InvalidProduct, DuplicateKey   checkout input (also ValueError)
    ├── TriageError                 producer.triage: a failed task cannot be replayed/resolved
    ├── DeployError                 infra.deploy: a gcloud command failed (also RuntimeError)
    ├── TerraformExportError        infra.deploy: a plan step the Terraform export cannot map (also ValueError)
    └── BadFilter                   infra.console: a failed-log filter is malformed (also ValueError)

Classes outside this module keep a builtin base where callers catch it (``ValueError``);
``tests/test_error_tree.py`` checks that every exception class the project defines is an
``OrderTasksError`` (the emulator in ``infra/emulator`` stands alone and keeps its own).
``OrderTasksDeprecationWarning`` is our deprecation warning, not an error.
"""

from __future__ import annotations


class OrderTasksError(Exception):
    """Base of every error ordertasks raises on purpose."""


class ConfigurationError(OrderTasksError):
    """Settings or the task catalog are invalid; the message says what to change."""


class RetryableError(OrderTasksError):
    """A transient failure: the task should be delivered again later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DependencyUnavailable(RetryableError):
    """A dependency (SMTP, warehouse, store, bucket) is down, timed out or answered 5xx."""


class Throttled(RetryableError):
    """A dependency asked us to slow down (HTTP 429); ``retry_after`` in seconds if given."""


class LeaseHeld(RetryableError):
    """Another delivery of the same task holds the effect's claim right now."""


class PermanentError(OrderTasksError):
    """Retrying cannot succeed; the task goes to the failed-task log."""


class InvalidPayload(PermanentError):
    """The task body is not valid JSON or not a valid envelope for its kind."""


class UnknownTaskKind(PermanentError):
    """The envelope names a kind the handler does not serve."""


class UnknownOrder(PermanentError):
    """The task refers to an order the store does not have (forged, or from another system)."""


class Rejected(PermanentError):
    """A dependency refused the request for good (for example a warehouse 4xx)."""


class TaskVanished(PermanentError):
    """Cloud Tasks deleted an owed effect's task after its retries, and the auditor's own
    re-creations went the same way: the handler never answered (down, crash-looping, failing)."""


class AuthError(OrderTasksError):
    """The caller could not be authenticated or is not allowed."""

    status = 401


class Unauthenticated(AuthError):
    """No token, or a token that is malformed, expired or badly signed (HTTP 401)."""

    status = 401


class Forbidden(AuthError):
    """A valid token for the wrong audience or service account (HTTP 403)."""

    status = 403


class OrderTasksDeprecationWarning(DeprecationWarning):
    """An interface that still works but will go: the message names its replacement.

    Our own warning class, so a test suite can turn exactly these into errors
    (``filterwarnings = error::ordertasks.handlers.errors.OrderTasksDeprecationWarning``)
    while other libraries' deprecation warnings stay ignored.
    """
