"""Fenced code blocks of README.md and docs/*.md, with the marker that says how each is run.

The convention (README, "Contributing"): every ``sh``/``console``/``python`` block is run by
``tests/docs`` against a dev stack the test starts. A block that cannot run here carries an HTML
comment on the line(s) just before its fence::

    <!-- not-run: needs a Google Cloud project -->

The reason is required. Other markers: ``<!-- run: eventually -->`` (the block shows effects
that arrive later: retried until it passes or 30 s pass), ``<!-- run: continues -->``
(a python block that continues the file's previous python block, sharing its names) and
``<!-- env: NAME=value … -->`` (variables the reader sets first, e.g. ``PYTHONPATH=examples/loyalty``;
values follow the same port and ``var/`` substitution as the block).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUNNABLE = ("sh", "console", "python")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w-]*)")
MARKER = re.compile(r"^\s*<!--\s*(?P<key>not-run|run|env)\s*:\s*(?P<value>.*?)\s*-->\s*$")
RUN_OPTIONS = ("eventually", "continues")
PLACEHOLDER = re.compile(r"<(?P<name>[a-z_]+)>")


@dataclass
class Block:
    """One fenced block: where it is, its language, its text and its markers."""

    doc: str                      # path relative to the repository, e.g. "docs/checkout.md"
    line: int                     # 1-based line of the opening fence
    lang: str
    text: str                     # dedented body
    not_run: str | None = None    # the reason, when marked not-run
    options: set[str] = field(default_factory=set)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """``docs/checkout.md:83``: what a failure names."""
        return f"{self.doc}:{self.line}"

    def doc_line(self, offset: int) -> str:
        """The doc's file:line of the body's ``offset``-th line (1-based)."""
        return f"{self.doc}:{self.line + offset}"


def documents() -> list[Path]:
    """The documents whose blocks are run: README.md and docs/*.md."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _markers(lines: list[str], fence_index: int) -> list[tuple[str, str]]:
    """Markers on the lines just above a fence (blank lines between them allowed)."""
    found, i = [], fence_index - 1
    while i >= 0 and (not lines[i].strip() or MARKER.match(lines[i])):
        if (m := MARKER.match(lines[i])):
            found.append((m["key"], m["value"]))
        i -= 1
    return found


def _body(lines: list[str], start: int, fence: str, indent: str) -> tuple[list[str], int]:
    """The block's lines (indentation of the fence removed) and the index of its closing fence."""
    body, i = [], start + 1
    while i < len(lines) and not lines[i].strip().startswith(fence):
        line = lines[i]
        body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
        i += 1
    return body, i


def blocks_of(path: Path) -> list[Block]:
    """Every fenced block of one document, in order."""
    lines, found, i = path.read_text(encoding="utf-8").splitlines(), [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        body, end = _body(lines, i, m["fence"], m["indent"])
        block = Block(str(path.relative_to(REPO)), i + 1, m["lang"].lower(), "\n".join(body) + "\n")
        for key, value in _markers(lines, i):
            if key == "not-run":
                block.not_run = value
            elif key == "env":
                block.env.update(dict(pair.split("=", 1) for pair in shlex.split(value)))
            else:
                block.options |= {v.strip() for v in value.split(",") if v.strip()}
        found.append(block)
        i = end + 1
    return found


def all_blocks() -> list[Block]:
    """Every fenced block of every document."""
    return [b for doc in documents() for b in blocks_of(doc)]


def runnable_blocks() -> list[Block]:
    """Blocks the suite runs: the runnable languages, not marked not-run."""
    return [b for b in all_blocks() if b.lang in RUNNABLE and b.not_run is None]


def complete_shell(text: str) -> bool:
    """True when ``text`` is a whole shell command (no open quote, no trailing backslash)."""
    if text.rstrip().endswith("\\"):
        return False
    masked = PLACEHOLDER.sub("X", text)     # `<order_id>` would read as a redirection
    return subprocess.run(["bash", "-n", "-c", masked], capture_output=True).returncode == 0


@dataclass
class Step:
    """One ``$ command`` of a console block and the output the doc shows after it."""

    line: int                     # offset of the command's first line within the block body
    command: str
    expected: list[str]


def console_steps(block: Block) -> list[Step]:
    """Split a console block into commands (``$ `` prompts, continued until complete) and outputs."""
    lines, steps, i = block.text.splitlines(), [], 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            raise ValueError(f"{block.doc_line(i + 1)}: console block line is neither '$ command' nor output")
        start, command = i, lines[i][2:]
        while not complete_shell(command) and i + 1 < len(lines):
            i += 1
            command += "\n" + lines[i]
        i += 1
        expected = []
        while i < len(lines) and not lines[i].startswith("$ "):
            expected.append(lines[i])
            i += 1
        steps.append(Step(start + 1, command, expected))
    return steps
