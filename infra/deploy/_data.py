"""Firestore housekeeping: TTL policies, and the composite indexes the console and triage query.

The indexes come from the Firestore backend (``COMPOSITE_INDEXES``), which owns the queries
that need them; until it names them, the ones the failed-task log's filters need.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ordertasks.infra.deploy._model import Command, Resource, lookup
from ordertasks.infra.deploy._target import Target

TTL_FIELDS = (("idempotency", "expire_at"), ("failed_tasks", "expire_at"), ("effect_attempts", "expire_at"),
              ("attempt_minutes", "expire_at"))
"""(collection group, timestamp field): documents are deleted within about a day of it."""
FALLBACK_INDEXES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("failed_tasks", (("status", "ascending"), ("last_failed_at", "descending"))),
    ("failed_tasks", (("kind", "ascending"), ("last_failed_at", "descending"))),
    ("failed_tasks", (("error_type", "ascending"), ("last_failed_at", "descending"))),
)


def composite_indexes() -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """(collection group, ((field path, order), ...)) of every composite index to create."""
    from ordertasks.handlers.backends import firestore

    named = getattr(firestore, "COMPOSITE_INDEXES", None)
    if named is None:
        return list(FALLBACK_INDEXES)
    return [(index.collection_group, tuple(index.fields)) for index in named]


def section_ttl(t: Target) -> list[Resource]:
    """Firestore TTL on each ``TTL_FIELDS`` field: finished claims go after ``ttl_days``, resolved
    failed-task entries after ``[failed_tasks] retention_days``, the console's attempt log and
    per-minute counters when they stop being shown."""
    return [_ttl(t, group, name) for group, name in TTL_FIELDS]


def _ttl(t: Target, group: str, name: str) -> Resource:
    project, field = f"--project={t.project}", (name, f"--collection-group={group}", f"--database={t.firestore_database}")

    def diff(document: Any) -> list[str]:
        return [] if lookup(document, "ttlConfig.state") in ("ACTIVE", "CREATING") else ["ttlConfig"]
    # --async: building the TTL index can take many minutes; apply need not wait for it.
    return Resource("ttl", f"Firestore TTL {group}.{name}",
                    ("firestore", "fields", "ttls", "update", *field, "--enable-ttl", "--async", project),
                    ("firestore", "indexes", "fields", "describe", *field, "--format=json", project), diff)


def _fields_of(index: Any) -> list[tuple[str, str]]:
    return [(f.get("fieldPath"), str(f.get("order", "")).lower()) for f in index.get("fields", [])
            if f.get("fieldPath") != "__name__"]


def _matching(document: Any, group: str, fields: Sequence[tuple[str, str]]) -> list[Any]:
    return [index for index in document or []
            if f"/collectionGroups/{group}/indexes/" in str(index.get("name", ""))
            and _fields_of(index) == list(fields)]


def _index(t: Target, group: str, fields: tuple[tuple[str, str], ...]) -> Resource:
    where = (f"--database={t.firestore_database}", f"--project={t.project}")
    configs = tuple(f"--field-config=field-path={path},order={order}" for path, order in fields)

    def delete(document: Any) -> Command:
        index_id = str(_matching(document, group, fields)[0]["name"]).rsplit("/", 1)[-1]
        return ("firestore", "indexes", "composite", "delete", index_id, *where, "--quiet")
    label = ", ".join(f"{path} {order}" for path, order in fields)
    return Resource("indexes", f"Firestore index {group} ({label})",
                    ("firestore", "indexes", "composite", "create", f"--collection-group={group}", *configs,
                     "--async", *where),
                    ("firestore", "indexes", "composite", "list", "--format=json", *where),
                    exists=lambda d: bool(_matching(d, group, fields)), delete_found=delete)


def section_indexes(t: Target) -> list[Resource]:
    """Each composite index; building one takes minutes, so apply does not wait (``--async``)."""
    return [_index(t, group, fields) for group, fields in composite_indexes()]
