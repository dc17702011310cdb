"""The pytest plugin of ordertasks: the fixtures ``ordertasks_local`` and ``ordertasks_catalog``.

Registered as the ``pytest11`` entry point ``ordertasks``, so installing ordertasks makes the
fixtures available in every pytest run. It only defines fixtures, and imports nothing of
ordertasks until a test asks for one: a run that does not use them pays nothing
(``-p no:ordertasks`` turns it off altogether).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ordertasks.producer.local_tasks import LocalOrderTasks


@pytest.fixture
def ordertasks_catalog() -> str | Path | None:
    """The catalog ``ordertasks_local`` uses: ``None`` means ``ORDERTASKS_CONFIG`` (a relative
    path is from the working directory), else the shipped catalog. Override this fixture in
    your ``conftest.py`` to return your catalog's path."""
    return None


@pytest.fixture
def ordertasks_local(ordertasks_catalog: str | Path | None) -> Iterator["LocalOrderTasks"]:
    """An ``OrderTasks`` over memory stores and an in-process queue on a manual clock:
    ``advance(seconds)``, then ``run_due()`` runs every due effect through the real
    dispatcher (``ordertasks.testing``, docs/testing.md)."""
    from ordertasks.producer.local_tasks import local_order_tasks

    with local_order_tasks(ordertasks_catalog) as tasks:
        yield tasks
