"""Configuration: the task catalog (``infra/tasks.toml`` by default).

``load_catalog(path)`` reads the catalog once and validates it; every other module asks it
for queues, kinds, delays and identities.

A catalog may build on another (``docs/kinds.md``, "A catalog that extends the shipped one"):
top-level ``extends = "builtin"`` (the shipped ``infra/tasks.toml``) or ``extends = "base.toml"``
(relative to the extending file), and ``drop = ["kinds.notify_warehouse", ...]``. The chain is
read base first; each file's ``drop`` removes tables (or keys) from what it inherits, then its
own tables are merged in key by key, sub-tables the same way, anything else (arrays included)
replaced whole. ``catalog_document`` is that merged document; each error still names the
file and line where the offending table was written.

Runtime ``Settings`` live in ``handlers.settings`` (``Settings.from_env()`` is the only place
in the project that reads environment variables) and are re-exported here, where they were first.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from ordertasks.handlers.addresses import parse_allow_private
from ordertasks.handlers.contract import KIND_NAME
from ordertasks.handlers.errors import ConfigurationError
from ordertasks.handlers.settings import (DEFAULT_CATALOG, GOOGLE_CERTS_URL, REPO_ROOT, Settings,
                                          default_data_dir)

__all__ = ["AuditConfig", "DEFAULT_CATALOG", "EmailConfig", "GOOGLE_CERTS_URL", "MAX_DELAY_SECONDS", "QUEUE_ID",
           "REPO_ROOT", "Catalog", "CatalogError", "KindConfig", "QueueConfig", "Settings", "WebhookConfig",
           "catalog_document", "catalog_texts", "default_data_dir", "expand", "load_catalog"]
MAX_DELAY_SECONDS = 30 * 24 * 3600
TASK_LIFETIME_SECONDS = 31 * 24 * 3600      # Cloud Tasks deletes any task this long after it was created
QUEUE_ID = re.compile(r"^[A-Za-z0-9-]{1,100}$")
ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"                   # an environment variable's name
ENV_VARIABLE = re.compile(ENV_NAME)


class CatalogError(ConfigurationError, ValueError):
    """The task catalog is invalid; the message names the file, line and what to fix."""


@dataclass(frozen=True)
class QueueConfig:
    """Rate and retry settings of one Cloud Tasks queue (durations in seconds)."""

    name: str
    max_dispatches_per_second: float = 25.0
    max_burst_size: int = 25
    max_concurrent_dispatches: int = 10
    max_attempts: int = 5
    min_backoff_seconds: float = 10.0
    max_backoff_seconds: float = 300.0
    max_doublings: int = 4
    max_retry_duration_seconds: float = 0.0

    def backoff_seconds(self, retry: int) -> float:
        """Cloud Tasks' wait before retry ``retry`` (0 = the first retry): doubling ``max_doublings``
        times from ``min_backoff_seconds``, then growing linearly, never over ``max_backoff_seconds``."""
        doublings = self.max_doublings
        factor = float(2 ** retry) if retry <= doublings else float(2 ** doublings * (retry - doublings + 1))
        return float(min(self.max_backoff_seconds, self.min_backoff_seconds * factor))

    def retry_span_seconds(self, dispatch_deadline_seconds: float) -> float:
        """Longest time from a task's first dispatch until Cloud Tasks gives up on it.

        Retrying stops only when both ``max_attempts`` and ``max_retry_duration_seconds`` are
        used up; each attempt may run up to its dispatch deadline. Unlimited attempts with no
        duration limit end with the task's 31-day lifetime.
        """
        if self.max_attempts == -1 and self.max_retry_duration_seconds <= 0:
            return float(TASK_LIFETIME_SECONDS)
        span = 0.0
        attempts = max(1, self.max_attempts)
        for retry in range(attempts - 1):
            span += self.backoff_seconds(retry) + dispatch_deadline_seconds
            if span >= TASK_LIFETIME_SECONDS:
                return float(TASK_LIFETIME_SECONDS)
        span += dispatch_deadline_seconds
        if self.max_retry_duration_seconds > 0:
            # A retry is still scheduled just before the duration runs out: one more backoff and attempt.
            span = max(span, self.max_retry_duration_seconds + self.max_backoff_seconds + dispatch_deadline_seconds)
        return float(min(span, TASK_LIFETIME_SECONDS))


@dataclass(frozen=True)
class AuditConfig:
    """``[auditor]``: how the auditor treats an owed effect whose task Cloud Tasks dropped.

    ``recreations``: how many times it creates the task again before recording it as failed
    (``TaskVanished``); ``margin_seconds``: how long past the queue's whole retry span it waits
    before it looks (at most a minute: the span already includes every backoff and deadline).
    """

    recreations: int = 3
    margin_seconds: float = 60.0


@dataclass(frozen=True)
class EmailConfig:
    """``[email]``: what the order emails link to.

    ``review_url``: where the review request sends the customer, ``{order_id}`` (the only
    placeholder, optional) replaced by the order's id, URL-encoded. ``None`` (no setting): the
    review request is sent without a link and says nothing about one.
    """

    review_url: str | None = None

    def review_link(self, order_id: str) -> str | None:
        """The review link of ``order_id``, or ``None`` when no ``review_url`` is set."""
        if self.review_url is None:
            return None
        return self.review_url.replace(ORDER_ID_PLACEHOLDER, quote(order_id, safe=""))


@dataclass(frozen=True)
class WebhookConfig:
    """A config-only HTTP integration: where a kind POSTs its data (``[kinds.NAME.webhook]``).

    ``url`` and ``timeout_seconds`` may name environment variables as ``${NAME}`` or
    ``${NAME:-default}``; they are expanded by the handler's wiring, so ``deploy`` and the CLI
    can read a catalog whose variables are only set where the handler runs.
    """

    url: str
    token_env: str | None = None
    timeout_seconds: float | str = 10.0
    token_optional: bool = False    # True: an unset token_env means "send no token" (the warehouse default)
    max_answer_bytes: int = 64 * 1024           # read at most this much of an answer
    allow_private: bool | tuple[str, ...] = False   # in the cloud: private networks (true) or these networks


@dataclass(frozen=True)
class KindConfig:
    """Where a task kind is queued, how long after checkout, its deadline and its code.

    ``effect`` is ``"module:attribute"`` for a shop's own kind; ``webhook`` a config-only HTTP
    integration; neither means a built-in kind of that name (``handlers/kinds/``).
    ``line`` is where the table starts in ``source``, the catalog file that wrote it (with
    ``extends``, possibly a base of the catalog loaded), for start-up messages.
    """

    name: str
    queue: str
    delay_seconds: float
    dispatch_deadline_seconds: float = 600.0
    effect: str | None = None
    webhook: WebhookConfig | None = None
    line: int = 0
    source: str = ""


@dataclass(frozen=True)
class Catalog:
    """The whole of ``infra/tasks.toml``, validated."""

    project: str
    region: str
    handler_function: str
    invoice_bucket: str
    service_accounts: Mapping[str, str]
    queues: Mapping[str, QueueConfig]
    kinds: Mapping[str, KindConfig]
    lease_seconds: float = 120.0
    ttl_days: int = 35
    failed_retention_days: int = 90   # a resolved failed-task entry is deleted this long after
    analytics_shards: int = 100     # ``[analytics]``: see ``_analytics_shards``
    handler: Mapping[str, Any] = field(default_factory=dict)
    source: str = "infra/tasks.toml"
    auditor: AuditConfig = field(default_factory=AuditConfig)
    checkout: bool = True       # our checkout API is part of this system (a ``[checkout]`` table)
    # ``[outbox] database_url``: the shop's database holding the transactional outbox, as written
    # (``${NAME}`` expanded when used: ``producer.outbox.relay``); None: no outbox named.
    outbox_database_url: str | None = None
    email: EmailConfig = EmailConfig()

    def audit_after_seconds(self, kind: str) -> float:
        """How long after its schedule time an owed effect of ``kind`` that is not settled must
        have been dropped by Cloud Tasks: the queue's whole retry span plus the auditor's margin."""
        config = self.kinds[kind]
        span = self.queue_for(kind).retry_span_seconds(config.dispatch_deadline_seconds)
        return span + self.auditor.margin_seconds

    def queue_for(self, kind: str) -> QueueConfig:
        """The queue configuration that carries tasks of ``kind``."""
        return self.queues[self.kinds[kind].queue]

    def service_account_email(self, role: str, project: str | None = None) -> str:
        """Email of the service account playing ``role`` (checkout, dispatcher, handler)."""
        return f"{self.service_accounts[role]}@{project or self.project}.iam.gserviceaccount.com"


def _line_of(text: str, table: str, key: str | None = None) -> int:
    """1-based line of ``[table]`` (or of ``key`` inside it) in the TOML text, 0 if absent."""
    lines = text.splitlines()
    header = re.compile(r"^\s*\[\s*" + re.escape(table).replace(r"\.", r"\s*\.\s*") + r"\s*\]")
    for number, line in enumerate(lines, start=1):
        if not header.match(line):
            continue
        if key is None:
            return number
        for offset, inner in enumerate(lines[number:], start=number + 1):
            if inner.lstrip().startswith("["):
                break
            if re.match(r"^\s*" + re.escape(key) + r"\s*=", inner):
                return offset
        return number
    return 0


def _top_line(text: str, key: str) -> int:
    """1-based line of a top-level ``key = ...`` (before the first table), 0 if absent."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("["):
            return 0
        if re.match(r"^\s*" + re.escape(key) + r"\s*=", line):
            return number
    return 0


def _queue(name: str, raw: Mapping[str, Any]) -> QueueConfig:
    known = set(QueueConfig.__dataclass_fields__) - {"name"}
    unknown = set(raw) - known
    if unknown:
        raise KeyError(sorted(unknown)[0])
    return QueueConfig(name=name, **raw)


def _check_queue(q: QueueConfig) -> str | None:
    if not QUEUE_ID.match(q.name):
        return f"queue id {q.name!r} must be 1-100 characters of [A-Za-z0-9-]"
    if not 0 <= q.max_dispatches_per_second <= 500:
        return "max_dispatches_per_second must be between 0 and 500"
    if not 0 <= q.max_concurrent_dispatches <= 5000:
        return "max_concurrent_dispatches must be between 0 and 5000"
    if q.max_attempts < -1 or q.max_attempts == 0:
        return "max_attempts must be -1 (unlimited) or at least 1"
    if q.min_backoff_seconds < 0 or q.min_backoff_seconds > q.max_backoff_seconds:
        return "min_backoff_seconds must be >= 0 and <= max_backoff_seconds"
    if q.max_doublings < 0:
        return "max_doublings must be >= 0"
    return None


KIND_KEYS = frozenset({"queue", "delay_seconds", "dispatch_deadline_seconds", "effect", "webhook"})
WEBHOOK_KEYS = frozenset(WebhookConfig.__dataclass_fields__) - {"token_optional"}
MAX_ANSWER_BYTES = 16 * 1024 * 1024       # a webhook answer is a status and an id, not a download
EFFECT_REF = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


def _webhook(raw: Any) -> WebhookConfig:
    if not isinstance(raw, Mapping):
        raise ValueError("webhook must be a table: [kinds.NAME.webhook] with url = \"https://...\"")
    unknown = set(raw) - WEBHOOK_KEYS
    if unknown:
        raise ValueError(f"unknown webhook setting {sorted(unknown)[0]!r}; use {sorted(WEBHOOK_KEYS)}")
    if not isinstance(raw.get("url"), str) or not raw["url"].strip():
        raise ValueError("webhook needs url = \"https://...\" (environment variables allowed: \"${CRM_URL}\")")
    token_env = raw.get("token_env")
    if token_env is not None and not (isinstance(token_env, str) and ENV_VARIABLE.fullmatch(token_env)):
        raise ValueError("webhook token_env must be the name of an environment variable, e.g. \"CRM_TOKEN\"")
    cap = raw.get("max_answer_bytes", 64 * 1024)
    if isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= MAX_ANSWER_BYTES:
        raise ValueError(f"webhook max_answer_bytes = {cap!r} must be a whole number from 1 to {MAX_ANSWER_BYTES}")
    return WebhookConfig(url=raw["url"].strip(), token_env=token_env, timeout_seconds=raw.get("timeout_seconds", 10.0),
                         max_answer_bytes=cap, allow_private=parse_allow_private(raw.get("allow_private", False)))


def _kind(name: str, raw: Any, line: int) -> KindConfig:
    if not isinstance(raw, Mapping):
        raise ValueError("a kind must be a table with queue and delay_seconds")
    unknown = set(raw) - KIND_KEYS
    if unknown:
        raise ValueError(f"unknown setting {sorted(unknown)[0]!r}; a kind takes {sorted(KIND_KEYS)}")
    missing = [key for key in ("queue", "delay_seconds") if key not in raw]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    effect = raw.get("effect")
    if effect is not None and not (isinstance(effect, str) and EFFECT_REF.match(effect)):
        raise ValueError(f"effect {effect!r} must be \"package.module:attribute\"")
    webhook = _webhook(raw["webhook"]) if "webhook" in raw else None
    if effect and webhook:
        raise ValueError("give either effect = \"module:attribute\" or a webhook table, not both")
    return KindConfig(name=name, queue=raw["queue"], delay_seconds=float(raw["delay_seconds"]),
                      dispatch_deadline_seconds=float(raw.get("dispatch_deadline_seconds", 600.0)),
                      effect=effect, webhook=webhook, line=line)


def _check_kind(kind: KindConfig, queues: Mapping[str, QueueConfig]) -> tuple[str | None, str] | None:
    if kind.queue not in queues:
        return "queue", f"unknown queue {kind.queue!r}; define [queues.{kind.queue}] or use one of {sorted(queues)}"
    if not 0 <= kind.delay_seconds <= MAX_DELAY_SECONDS:
        return "delay_seconds", f"delay_seconds={kind.delay_seconds} is over Cloud Tasks' 30-day limit ({MAX_DELAY_SECONDS} s)"
    if not KIND_NAME.fullmatch(kind.name):
        return None, f"kind name {kind.name!r} must be 1-63 characters of a-z 0-9 _, starting with a letter"
    if not 15 <= kind.dispatch_deadline_seconds <= 1800:
        return "dispatch_deadline_seconds", "dispatch_deadline_seconds must be between 15 and 1800"
    return None


def _reason(exc: OSError | UnicodeDecodeError) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return exc.strerror or type(exc).__name__


def _catalog_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read the catalog ({_reason(exc)}); point ORDERTASKS_CONFIG or "
                           "--config at a catalog file (the default is infra/tasks.toml)") from exc


EXTENDS_BUILTIN = "builtin"       # extends = "builtin": the shipped catalog, wherever the package is
MAX_EXTENDS_DEPTH = 8             # files in one extends chain, the extending one included
DIRECTIVES = ("extends", "drop")  # top-level keys that shape the chain; never inherited


@dataclass(frozen=True)
class _CatalogFile:
    """One file of an ``extends`` chain: its text, and the tables it still contributes once the
    files that extend it have dropped theirs."""

    path: Path
    text: str
    tables: dict[str, Any]


def _parsed(path: Path) -> tuple[str, dict[str, Any]]:
    text = _catalog_text(path)
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: not valid TOML: {exc}") from exc


def _chain(path: Path, extending: tuple[Path, ...] = ()) -> list[_CatalogFile]:
    """The files behind ``path``, base first, ``path`` last, drops applied."""
    text, document = _parsed(path)
    base = _base_of(path, text, document.get("extends"), extending)
    inherited = _chain(base, (*extending, path)) if base else []
    for dotted in _drops(path, text, document.get("drop"), inherited):
        for earlier in inherited:
            _remove(earlier.tables, dotted)
    own = {key: value for key, value in document.items() if key not in DIRECTIVES}
    return [*inherited, _CatalogFile(path, text, own)]


def _base_of(path: Path, text: str, extends: Any, extending: tuple[Path, ...]) -> Path | None:
    """The file ``extends`` names (``None`` without one); ``CatalogError`` naming the key otherwise."""
    if extends is None:
        return None
    where = f"{path}:{_top_line(text, 'extends')}: extends = {extends!r}"
    if not isinstance(extends, str) or not extends.strip():
        raise CatalogError(f"{where} must be \"builtin\" (the shipped catalog) or the path of a catalog file, "
                           "relative to this one, e.g. extends = \"base.toml\"")
    base = DEFAULT_CATALOG if extends == EXTENDS_BUILTIN else path.parent / Path(extends).expanduser()
    chain = [*extending, path]
    if base.resolve() in {p.resolve() for p in chain}:
        cycle = " -> ".join(str(p) for p in [*chain, base])
        raise CatalogError(f"{where} makes a cycle ({cycle}): a catalog cannot extend itself, directly or through another")
    if len(chain) >= MAX_EXTENDS_DEPTH:
        raise CatalogError(f"{where} makes a chain longer than {MAX_EXTENDS_DEPTH} files: extend fewer levels")
    if not base.is_file():
        raise CatalogError(f"{where}: no catalog file at {base} (a path is relative to {path.parent}; "
                           "\"builtin\" is the shipped catalog)")
    return base


def _drops(path: Path, text: str, drop: Any, inherited: list[_CatalogFile]) -> list[str]:
    """The dotted paths ``drop`` removes; ``CatalogError`` for one the inherited catalog lacks."""
    if drop is None:
        return []
    where = f"{path}:{_top_line(text, 'drop')}: drop"
    if not inherited:
        raise CatalogError(f"{where} needs extends = \"...\": without a base there is nothing to drop")
    if not isinstance(drop, list) or not all(isinstance(p, str) and p for p in drop):
        raise CatalogError(f"{where} must be a list of dotted table paths, e.g. drop = [\"kinds.notify_warehouse\"]")
    document = _merged(inherited)
    for dotted in drop:
        if _lookup(document, dotted) is None:
            raise CatalogError(f"{where}: {dotted!r} is not in the catalog it extends ({inherited[-1].path})"
                               + _did_you_mean(dotted, document))
    return drop


def _did_you_mean(dotted: str, document: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(dotted, list(_dotted_paths(document)), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _dotted_paths(document: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in document.items():
        yield prefix + key
        if isinstance(value, dict):
            yield from _dotted_paths(value, f"{prefix}{key}.")


def _lookup(document: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted path (``"kinds.notify_warehouse"``), ``None`` if there is none."""
    found: Any = document
    for part in dotted.split("."):
        if not isinstance(found, dict) or part not in found:
            return None
        found = found[part]
    return found


def _remove(document: dict[str, Any], dotted: str) -> None:
    parent, _, last = dotted.rpartition(".")
    holder = _lookup(document, parent) if parent else document
    if isinstance(holder, dict):
        holder.pop(last, None)


def _merged(files: list[_CatalogFile]) -> dict[str, Any]:
    """The chain as one document: later files' tables merged key by key into earlier ones'."""
    document: dict[str, Any] = {}
    for file in files:
        _merge_into(document, file.tables)
    return document


def _merge_into(target: dict[str, Any], overlay: Mapping[str, Any]) -> None:
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _written_at(files: list[_CatalogFile], table: str, key: str | None) -> tuple[Path, int]:
    """File and line where ``[table]`` (its ``key`` if given) was last written in the chain."""
    holding = [f for f in files if isinstance(_lookup(f.tables, table), dict)]
    with_key = [f for f in holding if key is None or key in _lookup(f.tables, table)]
    chosen = (with_key or holding or files)[-1]
    return chosen.path, _line_of(chosen.text, table, key)


def catalog_document(path: str | Path = DEFAULT_CATALOG) -> dict[str, Any]:
    """Every table of the catalog as parsed TOML, ``extends`` and ``drop`` applied, for the parts
    ``Catalog`` does not model (``[cloud]``, ``[scheduler]``); raises ``CatalogError`` naming the file."""
    return _merged(_chain(Path(path)))


def catalog_texts(path: str | Path = DEFAULT_CATALOG) -> list[str]:
    """The text of each file of the catalog's ``extends`` chain, base first (where settings look
    for the environment variables webhooks name)."""
    return [file.text for file in _chain(Path(path))]


def load_catalog(path: str | Path = DEFAULT_CATALOG) -> Catalog:
    """Read and validate the catalog; raise ``CatalogError`` naming the offending file and line."""
    path = Path(path)
    files = _chain(path)
    raw = _merged(files)

    def fail(table: str, key: str | None, message: str) -> CatalogError:
        file, line = _written_at(files, table, key)
        return CatalogError(f"{file}:{line}: [{table}] {message}")

    queues = _queues(raw, fail)
    kinds = _kinds(raw, files, queues, fail)
    try:
        retention_days = _retention_days(raw.get("failed_tasks", {}))
    except ValueError as exc:
        raise fail("failed_tasks", "retention_days", str(exc)) from exc
    try:
        auditor = _auditor(raw.get("auditor", {}))
    except ValueError as exc:
        raise fail("auditor", None, str(exc)) from exc
    try:
        checkout = _checkout(raw)
    except ValueError as exc:
        raise fail("checkout", "enabled", str(exc)) from exc
    try:
        outbox = _outbox(raw.get("outbox", {}))
    except ValueError as exc:
        raise fail("outbox", None, str(exc)) from exc
    try:
        email = _email(raw.get("email", {}))
    except ValueError as exc:
        raise fail("email", "review_url", str(exc)) from exc
    try:
        analytics_shards = _analytics_shards(raw.get("analytics", {}))
    except ValueError as exc:
        raise fail("analytics", None, str(exc)) from exc
    project = raw.get("project", {})
    return Catalog(
        project=project.get("id", "local-project"),
        region=project.get("region", "us-central1"),
        handler_function=project.get("handler_function", "ordertasks-handler"),
        invoice_bucket=project.get("invoice_bucket", "ordertasks-invoices"),
        service_accounts=dict(raw.get("service_accounts", {})),
        queues=queues,
        kinds=kinds,
        lease_seconds=float(raw.get("idempotency", {}).get("lease_seconds", 120)),
        ttl_days=int(raw.get("idempotency", {}).get("ttl_days", 35)),
        failed_retention_days=retention_days,
        analytics_shards=analytics_shards,
        handler=dict(raw.get("handler", {})),
        source=str(path),
        auditor=auditor,
        checkout=checkout,
        outbox_database_url=outbox,
        email=email,
    )


_Failure = Callable[[str, str | None, str], CatalogError]   # (table, key, message) -> the error naming file:line


def _queues(raw: Mapping[str, Any], fail: _Failure) -> dict[str, QueueConfig]:
    """Every ``[queues.NAME]``, validated."""
    queues: dict[str, QueueConfig] = {}
    for name, body in raw.get("queues", {}).items():
        try:
            queues[name] = _queue(name, body)
        except (KeyError, TypeError) as exc:
            raise fail(f"queues.{name}", None, f"unknown or malformed setting {exc}") from exc
        problem = _check_queue(queues[name])
        if problem:
            raise fail(f"queues.{name}", None, problem)
    return queues


def _kinds(raw: Mapping[str, Any], files: list[_CatalogFile], queues: Mapping[str, QueueConfig],
           fail: _Failure) -> dict[str, KindConfig]:
    """Every ``[kinds.NAME]``, validated, each knowing the file and line that wrote it."""
    kinds: dict[str, KindConfig] = {}
    for name, body in raw.get("kinds", {}).items():
        file, line = _written_at(files, f"kinds.{name}", None)
        try:
            kinds[name] = replace(_kind(name, body, line), source=str(file))
        except (TypeError, ValueError) as exc:
            raise fail(f"kinds.{name}", None, str(exc)) from exc
        problem = _check_kind(kinds[name], queues)
        if problem:
            raise fail(f"kinds.{name}", problem[0], problem[1])
    return kinds


def _checkout(raw: Mapping[str, Any]) -> bool:
    """Whether the system includes our checkout API: a ``[checkout]`` table whose ``enabled`` is
    not false. A shop with its own checkout has no such table (or drops the inherited one)."""
    table = raw.get("checkout")
    if table is None:
        return False
    enabled = table.get("enabled", True) if isinstance(table, Mapping) else table
    if not isinstance(enabled, bool):
        raise ValueError("enabled must be true or false")
    return enabled


def _outbox(raw: Mapping[str, Any]) -> str | None:
    """``[outbox] database_url``: the transactional outbox's database, e.g. ``"${ORDERTASKS_OUTBOX_URL}"``."""
    unknown = set(raw) - {"database_url"}
    if unknown:
        raise ValueError(f"unknown setting {sorted(unknown)[0]!r}; [outbox] takes database_url")
    url = raw.get("database_url")
    if url is not None and (not isinstance(url, str) or not url.strip()):
        raise ValueError('database_url must be a non-empty string, e.g. "${ORDERTASKS_OUTBOX_URL}"')
    return url


ORDER_ID_PLACEHOLDER = "{order_id}"
REVIEW_URL_EXAMPLE = 'review_url = "https://shop.example/review/{order_id}"'


def _email(raw: Any) -> EmailConfig:
    """``[email] review_url``: an absolute http(s) URL, ``{order_id}`` its only placeholder."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"must be a table: [email] with {REVIEW_URL_EXAMPLE}")
    unknown = set(raw) - {"review_url"}
    if unknown:
        raise ValueError(f"unknown setting {sorted(unknown)[0]!r}; [email] takes review_url")
    url = raw.get("review_url")
    if url is None:
        return EmailConfig()
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"review_url must be a URL, e.g. {REVIEW_URL_EXAMPLE} (leave it out for no link)")
    problem = _review_url_problem(url.strip())
    if problem:
        raise ValueError(f"review_url {url[:200]!r} {problem}, e.g. {REVIEW_URL_EXAMPLE}")
    return EmailConfig(review_url=url.strip())


def _review_url_problem(url: str) -> str | None:
    bare = url.replace(ORDER_ID_PLACEHOLDER, "x")
    if "{" in bare or "}" in bare:
        return "may hold no placeholder but {order_id} (and no other braces)"
    if any(char.isspace() or unicodedata.category(char).startswith("C") for char in bare):
        return "must not contain spaces or control characters (percent-encode them)"
    try:
        parts = urlsplit(bare)
    except ValueError as exc:
        return f"is not a URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http:// or https:// URL"
    return None


def _auditor(raw: Mapping[str, Any]) -> AuditConfig:
    """``[auditor]``: ``recreations`` (0-20, default 3) and ``margin_seconds`` (0-60, default 60)."""
    unknown = set(raw) - {"recreations", "margin_seconds"}
    if unknown:
        raise ValueError(f"unknown setting {sorted(unknown)[0]!r}; [auditor] takes recreations and margin_seconds")
    recreations = raw.get("recreations", 3)
    if isinstance(recreations, bool) or not isinstance(recreations, int) or not 0 <= recreations <= 20:
        raise ValueError(f"recreations = {recreations!r} must be a whole number from 0 to 20 (default 3)")
    margin = raw.get("margin_seconds", 60)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin <= 60:
        raise ValueError(f"margin_seconds = {margin!r} must be a number of seconds from 0 to 60 (default 60)")
    return AuditConfig(recreations=recreations, margin_seconds=float(margin))


def _retention_days(raw: Mapping[str, Any]) -> int:
    """``[failed_tasks] retention_days``: how long a resolved entry is kept (default 90)."""
    days = raw.get("retention_days", 90)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"retention_days = {days!r} is not a whole number of days >= 1 (default 90)")
    return days


# Firestore sustains about one write a second on a document. Orders hash onto the shards
# unevenly (over a minute at 50/s the busiest of 100 shards took 1.5 x the mean: 0.75 writes/s), so
# the shards are sized for half that on average.
SHARD_WRITES_PER_SECOND = 0.5
DEFAULT_PEAK_ORDERS_PER_SECOND = 50


def _analytics_shards(raw: Mapping[str, Any]) -> int:
    """``[analytics]``: ``shards`` when written (it wins), else ``ceil(peak_orders_per_second / 0.5)``,
    so each daily shard document takes <= 0.5 writes/s on average at the peak (default peak 50
    orders/s: 100 shards). Reading a day's total reads one document per shard written that day."""
    if "shards" in raw:
        shards = raw["shards"]
        if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= 10_000:
            raise ValueError(f"shards = {shards!r} is not a whole number between 1 and 10000; or leave it out "
                             "and set peak_orders_per_second")
        return shards
    peak = raw.get("peak_orders_per_second", DEFAULT_PEAK_ORDERS_PER_SECOND)
    if isinstance(peak, bool) or not isinstance(peak, (int, float)) or not 0 < peak <= 5_000:
        raise ValueError(f"peak_orders_per_second = {peak!r} is not a number of orders per second above 0 "
                         f"and at most 5000 (default {DEFAULT_PEAK_ORDERS_PER_SECOND})")
    return math.ceil(peak / SHARD_WRITES_PER_SECOND)


ENV_REFERENCE = re.compile(r"\$\{(" + ENV_NAME + r")(?::-([^}]*))?\}")
TOKEN_ENV = re.compile(r"^\s*token_env\s*=\s*[\"'](" + ENV_NAME + r")[\"']", re.M)


def expand(value: str, environment: Mapping[str, str], where: str) -> str:
    """``value`` with ``${NAME}`` / ``${NAME:-default}`` replaced; ``ConfigurationError`` if unset."""
    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = environment.get(name) or default
        if found is None:
            raise ConfigurationError(f"{where} uses ${{{name}}}, which is not set: export {name}=... "
                                     f"or write ${{{name}:-default}}")
        return found
    return ENV_REFERENCE.sub(substitute, value)
