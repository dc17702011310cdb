"""A second terminal beside a running ``ordertasks dev``: how the docs' blocks are run.

The rule (README, "Contributing"): a block is run as a reader would run it in a second
terminal of ``make dev``, after the ``export`` lines the dev banner prints. The stack the suite
starts listens on free ports with its data in a temporary directory, so before a block runs

- ``127.0.0.1:PORT`` / ``localhost:PORT`` with a default port of ``ordertasks dev`` (8123, 8081,
  8080, 1025, 8090, 8088) becomes the session's port for that part;
- a path starting ``var/`` becomes the session's data directory;
- ``<order_id>`` becomes the last order id an earlier block of the same document printed.

Expected output (the lines after a ``$ command`` in a ``console`` block) is compared after
masking what differs per run (order ids, timestamps, task-name hashes); ``…`` alone on a line
stands for any lines, inside a line for any text; a JSON answer is compared by structure: every key the doc shows, list lengths, and each
value the doc shows (``"…"`` matches anything).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.docs.blocks import PLACEHOLDER, REPO, Block, Step

DEFAULT_PORTS = {"emulator": 8123, "handler": 8081, "checkout": 8080, "smtp": 1025, "warehouse": 8090, "console": 8088}
ORDER_ID = re.compile(r"\bord_[a-z0-9]+\b")
MASKS = [
    (re.compile(r"\bord_[a-z0-9]+\b"), "<order_id>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?"), "<time>"),
    (re.compile(r"/tasks/[0-9a-f]{8}-"), "/tasks/<h>-"),
    (re.compile(r"\s+"), " "),
]
ELLIPSIS = "…"
TIMEOUT = 120


def mask(text: str) -> str:
    """``text`` with what differs between runs replaced by fixed tokens, whitespace collapsed."""
    for pattern, token in MASKS:
        text = pattern.sub(token, text)
    return text.strip()


@dataclass
class Terminal:
    """The environment, ports and data directory a doc block runs against."""

    env: dict[str, str]
    ports: dict[str, int]
    data_dir: Path
    seen: dict[str, dict[str, str]] = field(default_factory=dict)   # doc -> placeholder -> value

    def substitute(self, text: str, block: Block) -> str:
        """The block's text pointed at this session's stack (the rule in the module docstring)."""
        for part, default in DEFAULT_PORTS.items():
            text = re.sub(rf"\b(?:127\.0\.0\.1|localhost):{default}\b", f"127.0.0.1:{self.ports[part]}", text)
        text = re.sub(r"(?<![\w./-])var/", f"{self.data_dir}/", text)
        return PLACEHOLDER.sub(lambda m: self._placeholder(m, block), text)

    def _placeholder(self, match: re.Match[str], block: Block) -> str:
        value = self.seen.get(block.doc, {}).get(match["name"])
        if value is None:
            raise AssertionError(f"{block.where}: {match[0]} is used before any earlier block of "
                                 f"{block.doc} printed one")
        return value

    def remember(self, block: Block, output: str) -> None:
        """Keep the last order id the block printed, for ``<order_id>`` in later blocks."""
        ids = ORDER_ID.findall(output)
        if ids:
            self.seen.setdefault(block.doc, {})["order_id"] = ids[-1]

    def block_env(self, block: Block) -> dict[str, str]:
        """The terminal's environment plus the block's ``<!-- env: -->`` variables (substituted)."""
        return {**self.env, **{k: self.substitute(v, block) for k, v in block.env.items()}}

    def shell(self, script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a script with bash, stopping at the first failing command (it prints its line)."""
        prologue = "set -eo pipefail\ntrap 'echo \"ERR at script line $((LINENO - 2))\" >&2' ERR\n"
        with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
            f.write(prologue + script)
        return subprocess.run(["bash", f.name], env=env or self.env, cwd=REPO, capture_output=True, text=True,
                              timeout=TIMEOUT)

    def python(self, source: str, filename: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run python source as ``filename`` (tracebacks then name the doc and its lines)."""
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(source)
        runner = ("import sys; src = open(sys.argv[1]).read(); "
                  "exec(compile(src, sys.argv[2], 'exec'), {'__name__': '__main__'})")
        return subprocess.run([sys.executable, "-c", runner, f.name, filename], env=env or self.env, cwd=REPO,
                              capture_output=True, text=True, timeout=TIMEOUT)


def failure(block: Block, offset: int, what: str, done: subprocess.CompletedProcess[str]) -> str:
    """The failure message: doc file and line first, then what happened and the output."""
    return (f"{block.doc_line(offset)}: {what} (exit {done.returncode})\n"
            f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}")


def shell_error_line(block: Block, done: subprocess.CompletedProcess[str]) -> int:
    """The body line of the command that failed (from the ERR trap), else the block's first."""
    m = re.search(r"ERR at script line (\d+)", done.stderr)
    return int(m.group(1)) if m else 1


def json_mismatches(doc: Any, actual: Any, path: str = "$") -> list[str]:
    """Where ``actual`` differs from the JSON the doc shows (keys, list lengths, shown values)."""
    if isinstance(doc, dict):
        if not isinstance(actual, dict):
            return [f"{path}: the doc shows an object, got {actual!r}"]
        return [m for k, v in doc.items()
                for m in ([f"{path}.{k}: missing"] if k not in actual else json_mismatches(v, actual[k], f"{path}.{k}"))]
    if isinstance(doc, list):
        if not isinstance(actual, list) or len(actual) != len(doc):
            return [f"{path}: the doc shows {len(doc)} items, got {len(actual) if isinstance(actual, list) else actual!r}"]
        return [m for i, (d, a) in enumerate(zip(doc, actual)) for m in json_mismatches(d, a, f"{path}[{i}]")]
    if doc == ELLIPSIS or mask(str(doc)) == mask(str(actual)):
        return []
    return [f"{path}: the doc shows {doc!r}, got {actual!r}"]


def split_json(lines: list[str]) -> tuple[list[str], str | None]:
    """Text lines before a JSON document, and the document (from the first line opening ``{``/``[``)."""
    for i, line in enumerate(lines):
        if line.startswith(("{", "[")):
            return lines[:i], "\n".join(lines[i:])
    return lines, None


def line_matches(expected: str, actual: str) -> bool:
    """Equal after masking; a ``…`` inside the expected line stands for any text."""
    if ELLIPSIS not in expected:
        return expected == actual
    pattern = ".*".join(re.escape(part.strip()) for part in expected.split(ELLIPSIS))
    return re.fullmatch(pattern, actual) is not None


def text_mismatch(expected: list[str], actual: str) -> str | None:
    """The first expected line not found, in order, in the actual output (``…`` skips lines)."""
    actual_lines = [mask(line) for line in actual.splitlines() if line.strip()]
    position = 0
    for line in (mask(e) for e in expected if e.strip() and e.strip() != ELLIPSIS):
        while position < len(actual_lines) and not line_matches(line, actual_lines[position]):
            position += 1
        if position == len(actual_lines):
            return line
        position += 1
    return None


def output_mismatches(step: Step, stdout: str) -> list[str]:
    """What the doc shows after a command that the command did not print."""
    text, document = split_json(step.expected)
    actual_text, actual_document = split_json(stdout.replace("\r\n", "\n").splitlines())
    problems = []
    missing = text_mismatch(text, "\n".join(actual_text))
    if missing is not None:
        problems.append(f"the doc shows the line {missing!r}, which the output lacks")
    if document is not None:
        if actual_document is None:
            return problems + ["the doc shows a JSON answer, the output has none"]
        problems += json_mismatches(json.loads(document), json.loads(actual_document))
    return problems
