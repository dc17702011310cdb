"""Untrusted text made safe to print on an operator's terminal.

Failed-task fields echo what the outside world sent: exception text quoting a forged email
address, a warehouse's 4xx body, an order id from a task body. Printed raw, an ESC sequence
in them would be interpreted by the terminal (recolour, move the cursor, rewrite earlier
lines, set the window title, on some terminals worse). Every CLI output path passes such
text through here at output time, so the operator sees ``\\x1b[2J``, not a cleared screen.

``escape_controls`` is for one value (a table cell, a field): every control character,
line break included, is shown as an escape. ``for_terminal`` is for a whole block of output
that we laid out ourselves: the same, except for the newlines between its lines.
"""

from __future__ import annotations

import unicodedata

# Cc: C0/C1 controls and DEL; Cf: format characters (bidi overrides can reorder what is
# shown, zero-width ones hide text); Zl/Zp: line and paragraph separators.
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: object) -> str:
    """``text`` with every control or format character shown as ``\\xNN`` / ``\\uNNNN``."""
    value = "" if text is None else str(text)
    if value.isprintable():                 # the common case, checked in C
        return value
    return "".join(_escape(c) if unicodedata.category(c) in UNSAFE_CATEGORIES else c for c in value)


def for_terminal(text: str) -> str:
    """A block of output with each line's control characters escaped (its newlines kept)."""
    return "\n".join(escape_controls(line) for line in text.split("\n"))


def plain_help(doc: str | None) -> str:
    """A docstring as ``--help`` shows it: reST inline literals (double backquotes) as plain text."""
    return (doc or "").replace("``", "")
