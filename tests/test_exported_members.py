"""The public surface of ``ordertasks`` is exactly ``__all__``, and every name in it resolves
(httpx keeps its surface the same way)."""

from __future__ import annotations

import subprocess
import sys

import ordertasks


def test_every_exported_name_resolves_to_what_it_names() -> None:
    for name in ordertasks.__all__:
        value = getattr(ordertasks, name)
        assert getattr(value, "__name__", name) == name, f"ordertasks.{name} is {value!r}"


def test_the_surface_is_what_the_docs_promise() -> None:
    assert set(ordertasks.__all__) == {
        "AsyncOrderTasks", "ConfigurationError", "DependencyUnavailable", "EffectContext", "Kind", "OrderConflict",
        "OrderNotFound", "OrderSnapshot", "OrderTasks", "OrderTasksError", "PermanentError", "Rejected",
        "RetryableError", "Task", "TaskResult", "Throttled", "kind"}


def test_public_names_are_the_core_classes_not_copies() -> None:
    from ordertasks.handlers.errors import PermanentError
    from ordertasks.producer.async_library import AsyncOrderTasks
    from ordertasks.producer.library import OrderTasks

    assert ordertasks.PermanentError is PermanentError and ordertasks.OrderTasks is OrderTasks
    assert ordertasks.AsyncOrderTasks is AsyncOrderTasks


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        ordertasks.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("ordertasks.NoSuchThing resolved")


def test_importing_the_emulator_loads_neither_flask_nor_the_checkout() -> None:
    """The facade is lazy: the emulator stands alone."""
    code = ("import sys, ordertasks.infra.emulator.service; "
            "print(sorted(m for m in sys.modules if m in ('flask', 'ordertasks.producer.library')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
