"""One reader over the process environment: ``ORDERTASKS_<NAME>`` variables, typed.

Modelled on flask's ``Config.from_prefixed_env``: a value object's ``from_env(reader)`` asks
for ``reader.text("SMTP_HOST")``, ``reader.flag("SMTP_STARTTLS", False)``,
``reader.number("SMTP_PORT", 1025, whole=True)`` and so on, and gets a typed value or a
``ConfigurationError`` whose message names the variable, repeats the bad value and says what
to write instead::

    ORDERTASKS_SMTP_PORT='x' is not a number: give a whole number, e.g. 1025

Rules every getter shares: an unset or empty variable is the default (so ``FOO=`` in a unit
file never means "off"); anything that cannot be read stops start-up, never a silent
default. ``Settings.from_env()`` builds the only reader, over ``os.environ``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import TypeVar

from ordertasks.handlers.errors import ConfigurationError

PREFIX = "ORDERTASKS_"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
Choice = TypeVar("Choice", bound=Enum)


class PrefixedEnvironment:
    """Typed getters over ``environ`` for variables named ``prefix + NAME``."""

    def __init__(self, environ: Mapping[str, str], prefix: str = PREFIX) -> None:
        self.environ = environ
        self.prefix = prefix

    def unprefixed(self) -> "PrefixedEnvironment":
        """A reader over the same mapping for variables others named (``CLOUD_TASKS_EMULATOR_HOST``)."""
        return PrefixedEnvironment(self.environ, prefix="")

    def variable(self, name: str) -> str:
        """The full variable name of setting ``name``: ``ORDERTASKS_SMTP_PORT`` for ``SMTP_PORT``."""
        return self.prefix + name

    def text(self, name: str, default: str | None = None) -> str | None:
        """The variable's value, or ``default`` when it is unset or empty."""
        value = self.environ.get(self.variable(name))
        return default if value is None or value == "" else value

    def flag(self, name: str, default: bool) -> bool:
        """A boolean: ``true/false``, ``1/0``, ``yes/no``, ``on/off`` in any case; nothing else."""
        value = self.text(name)
        if value is None:
            return default
        word = value.strip().lower()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
        raise self.refuse(name, value, "is not a boolean: use one of true/false, 1/0, yes/no, on/off "
                                       "(case-insensitive)")

    def number(self, name: str, default: float, *, whole: bool = False, positive: bool = False,
               minimum: float | None = None, maximum: float | None = None) -> float:
        """A finite number (``whole``: an integer; ``positive``: above 0) within ``[minimum, maximum]``."""
        value = self.text(name)
        if value is None:
            return default
        number = self._parse_number(name, value, whole, default)
        if positive and number <= 0:
            raise self.refuse(name, value, "is out of range: use a number greater than 0")
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            raise self.refuse(name, value, f"is out of range: use {_range(minimum, maximum)}")
        return number

    def whole(self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        """``number(..., whole=True)`` typed as ``int``."""
        return int(self.number(name, default, whole=True, minimum=minimum, maximum=maximum))

    def path(self, name: str, default: Path | None = None) -> Path | None:
        """A filesystem path (``~`` expanded), or ``default``."""
        value = self.text(name)
        return default if value is None else Path(value).expanduser()

    def names(self, name: str) -> tuple[str, ...]:
        """A comma-separated list, each item stripped, empty items dropped."""
        return tuple(item.strip() for item in (self.text(name) or "").split(",") if item.strip())

    def choice(self, name: str, choices: type[Choice], default: Choice, *, what: str, note: str = "") -> Choice:
        """One of the enum's values, spelt exactly (``ORDERTASKS_BACKEND=Cloud`` is refused).

        ``what`` names the kind of value in the message (``"a backend"``); ``note`` follows
        the accepted words (``" (local takes no money)"``).
        """
        value = self.text(name)
        if value is None:
            return default
        for member in choices:
            if member.value == value:
                return member
        words = " or ".join(str(member.value) for member in choices)
        raise self.refuse(name, value, f"is not {what}: use {words}{note}")

    def refuse(self, name: str, value: str, problem: str) -> ConfigurationError:
        """The error for ``value`` of setting ``name``: ``ORDERTASKS_NAME='value' <problem>``."""
        return ConfigurationError(f"{self.variable(name)}={value!r} {problem}")

    def _parse_number(self, name: str, value: str, whole: bool, default: float) -> float:
        try:
            number = int(value.strip()) if whole else float(value.strip())
        except ValueError:
            kind = "a whole number" if whole else "a number"
            raise self.refuse(name, value, f"is not a number: give {kind}, e.g. {default:g}") from None
        if not math.isfinite(number):
            raise self.refuse(name, value, f"is not a number: give a finite number, e.g. {default:g}")
        return number


def _range(minimum: float | None, maximum: float | None) -> str:
    """``"a number from 1 to 65535"``, ``"a number of at least 0"``, ..."""
    if minimum is not None and maximum is not None:
        return f"a number from {minimum:g} to {maximum:g}"
    if minimum is not None:
        return f"a number of at least {minimum:g}"
    return f"a number of at most {maximum:g}"
