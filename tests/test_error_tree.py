"""One error tree: every exception class the project defines hangs off ``OrderTasksError``
(``handlers/errors.py`` draws it), so ``except OrderTasksError`` catches everything ordertasks
raises on purpose. The emulator (``infra/emulator``) stands alone and keeps its own."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

from ordertasks.handlers.errors import OrderTasksError

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("handlers", "functions", "producer", "infra")
STANDS_ALONE = ("ordertasks.infra.emulator",)


def module_names() -> Iterator[str]:
    """Every importable module of the project's packages, the emulator and ``__main__`` aside."""
    for folder in FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = ("ordertasks", *path.relative_to(REPO).with_suffix("").parts)
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if parts[-1] != "__main__" and not name.startswith(STANDS_ALONE):
                yield name


def defined_exceptions() -> dict[str, type[BaseException]]:
    """``module.Class`` → class, for every exception (not warning) class defined in the project."""
    found: dict[str, type[BaseException]] = {}
    for name in module_names():
        for _, cls in inspect.getmembers(importlib.import_module(name), inspect.isclass):
            if cls.__module__ == name and issubclass(cls, BaseException) and not issubclass(cls, Warning):
                found[f"{name}.{cls.__qualname__}"] = cls
    return found


EXCEPTIONS = defined_exceptions()


def test_the_walk_finds_the_known_outliers_of_old() -> None:
    """Guards the scan: classes that once stood outside the tree are found at all."""
    assert {"ordertasks.handlers.config.CatalogError", "ordertasks.producer.payments.PaymentError",
            "ordertasks.producer.api_errors.ApiError", "ordertasks.infra.deploy._engine.DeployError"} <= set(EXCEPTIONS)


@pytest.mark.parametrize("name", sorted(EXCEPTIONS))
def test_every_exception_class_hangs_off_the_tree(name: str) -> None:
    assert issubclass(EXCEPTIONS[name], OrderTasksError), f"{name} does not derive from OrderTasksError"


def test_the_tree_in_the_docstring_names_every_class_of_the_errors_module() -> None:
    import ordertasks.handlers.errors as errors

    drawn = errors.__doc__ or ""
    own = [n.rsplit(".", 1)[1] for n in EXCEPTIONS if n.startswith("ordertasks.handlers.errors.")]
    assert own and all(name in drawn for name in own), [n for n in own if n not in drawn]
