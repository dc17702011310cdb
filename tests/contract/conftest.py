"""The ``stores`` fixture: every store backend, so one suite checks them all against the ports.

Each backend is one object per port (``handlers.ports.Stores``); a port's test module takes
its port from it (``store`` there is ``stores.effects``, ``stores.failed``, …).

Firestore runs on the session emulator (``firestore_emulator`` in ``tests/conftest.py``).
Each test gets its own project id for isolation. We build the client here rather than use
the shared ``firestore_client`` fixture because its ids keep the test name's underscores,
which the emulator refuses (``Unknown`` error on the first write); ours are
``contract-<hex>``, a valid project id.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ordertasks.handlers.backends.memory import MemoryStore
from ordertasks.handlers.backends.sqlite import SqliteStore
from ordertasks.handlers.ports import Stores

BACKENDS = ["memory", "sqlite", pytest.param("firestore", marks=pytest.mark.firestore)]


def firestore_client_for(project: str) -> Any:
    """A client on whatever FIRESTORE_EMULATOR_HOST names, with anonymous credentials."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    return firestore.Client(project=project, credentials=AnonymousCredentials())


def sanitized_project_id() -> str:
    """A fresh, valid project id (lowercase letters, digits, hyphens; 6-30 characters)."""
    return f"contract-{uuid.uuid4().hex[:16]}"


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    """Fresh, empty store ports of each backend."""
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "sqlite":
        sqlite_store = SqliteStore(tmp_path / "store.db")
        yield sqlite_store
        sqlite_store.close()
    else:
        from ordertasks.handlers.backends.firestore import FirestoreStore

        request.getfixturevalue("firestore_emulator")
        yield FirestoreStore(firestore_client_for(sanitized_project_id()), timeout=20.0)
