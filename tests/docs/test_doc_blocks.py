"""Every fenced sh/console/python block of README.md and docs/*.md runs, or says why it cannot.

Failures name the document and line first (``docs/checkout.md:9: …``). The rules for how a
block is run are in ``tests/docs/terminal.py``; the markers in ``tests/docs/blocks.py``.
"""

from __future__ import annotations

import functools
import itertools
import re
import subprocess
import sys
import time

import pytest

from tests.docs.blocks import REPO, RUN_OPTIONS, RUNNABLE, Block, all_blocks, console_steps, runnable_blocks
from tests.docs.terminal import Terminal, failure, output_mismatches, shell_error_line
from tests.support.servers import need_binary

EVENTUALLY_SECONDS = 30.0


def run_shell_block(block: Block, terminal: Terminal) -> None:
    """Run an ``sh`` block as one script; fail naming the doc line of the failing command."""
    done = terminal.shell(terminal.substitute(block.text, block), terminal.block_env(block))
    if done.returncode != 0:
        pytest.fail(failure(block, shell_error_line(block, done), "command failed", done), pytrace=False)
    terminal.remember(block, done.stdout)


def run_console_block(block: Block, terminal: Terminal) -> None:
    """Run each ``$ command``; check its status and the output the doc shows after it."""
    for step in console_steps(block):
        done = terminal.shell(terminal.substitute(step.command, block), terminal.block_env(block))
        if done.returncode != 0:
            pytest.fail(failure(block, step.line, "command failed", done), pytrace=False)
        problems = output_mismatches(step, done.stdout)
        if problems:
            pytest.fail(failure(block, step.line, "output differs from the doc: " + "; ".join(problems), done),
                        pytrace=False)
        terminal.remember(block, done.stdout)


def python_source(block: Block) -> str:
    """The block's code at its doc line numbers, after the blocks it continues."""
    chain = [block]
    if "continues" in block.options:
        earlier = [b for b in runnable_blocks() if b.doc == block.doc and b.lang == "python" and b.line < block.line]
        for previous in reversed(earlier):
            chain.insert(0, previous)
            if "continues" not in previous.options:
                break
    source = ""
    for part in chain:
        source += "\n" * (part.line - source.count("\n")) + part.text
    return source


def run_python_block(block: Block, terminal: Terminal) -> None:
    """Execute a python block (tracebacks carry the doc's file and lines)."""
    done = terminal.python(terminal.substitute(python_source(block), block), block.doc, terminal.block_env(block))
    if done.returncode != 0:
        lines = re.findall(rf'File "{re.escape(block.doc)}", line (\d+)', done.stderr)
        offset = int(lines[-1]) - block.line if lines else 1
        pytest.fail(failure(block, offset, "python block failed", done), pytrace=False)


RUNNERS = {"sh": run_shell_block, "console": run_console_block, "python": run_python_block}


@pytest.mark.parametrize("block", runnable_blocks(), ids=lambda b: b.where)
def test_block_runs(block: Block, terminal: Terminal) -> None:
    """The block does what the doc says, against a dev stack."""
    for binary in ("gcloud", "curl"):
        if re.search(rf"(^|[\s;|&($]){binary}\s", block.text):
            need_binary(binary, f"{block.where} runs {binary}")
    deadline = time.monotonic() + (EVENTUALLY_SECONDS if "eventually" in block.options else 0)
    while True:
        try:
            return RUNNERS[block.lang](block, terminal)
        except pytest.fail.Exception:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def test_every_shell_and_python_block_is_run_or_says_why_not() -> None:
    """An unlabelled fence hides a command from this suite; a not-run marker needs a reason."""
    problems = [f"{b.where}: fenced without a language; use sh, console, python or text"
                for b in all_blocks() if not b.lang]
    problems += [f"{b.where}: <!-- not-run: --> needs a reason" for b in all_blocks()
                 if b.not_run is not None and not b.not_run.strip()]
    problems += [f"{b.where}: unknown run option(s) {sorted(b.options - set(RUN_OPTIONS))}"
                 for b in all_blocks() if b.options - set(RUN_OPTIONS)]
    problems += [f"{b.where}: marked for a {b.lang} block, which is never run"
                 for b in all_blocks() if (b.not_run is not None or b.options or b.env) and b.lang not in RUNNABLE]
    assert not problems, "\n".join(problems)


def test_the_collector_finds_blocks_of_each_kind() -> None:
    """Guards the collector itself: a broken fence pattern would run nothing and pass."""
    langs = {b.lang for b in runnable_blocks()}
    assert {"sh", "console", "python"} <= langs, langs
    assert any(b.doc == "README.md" for b in runnable_blocks())


COMMAND_PATH = re.compile(r"^[a-z][a-z-]*$")


def ordertasks_lines(block: Block) -> list[tuple[int, list[str]]]:
    """(body line, words) of each ``ordertasks …`` command in a block (``$ `` prompts allowed)."""
    found = []
    for offset, line in enumerate(block.text.splitlines(), start=1):
        words = line.removeprefix("$ ").split("#", 1)[0].split()
        if words[:1] == ["ordertasks"]:
            found.append((offset, words[1:]))
    return found


@functools.cache
def _help(path: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *path, "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def help_text(path: list[str]) -> subprocess.CompletedProcess[str]:
    """``ordertasks PATH --help`` as a reader would run it (once per command per session)."""
    return _help(tuple(path))


@pytest.mark.parametrize("block", [b for b in all_blocks() if b.not_run is not None and ordertasks_lines(b)],
                         ids=lambda b: b.where)
def test_commands_in_blocks_not_run_exist_with_their_flags(block: Block) -> None:
    """A block that is not run still names commands and flags that exist (checked against --help)."""
    problems = []
    for offset, words in ordertasks_lines(block):
        path = list(itertools.takewhile(COMMAND_PATH.match, words))[:2]
        done = help_text(path)
        if done.returncode != 0 and len(path) == 2:      # the second word was an argument, not a subcommand
            path, done = path[:1], help_text(path[:1])
        if done.returncode != 0:
            problems.append(f"{block.doc_line(offset)}: `ordertasks {' '.join(path)} --help` failed: {done.stderr[-500:]}")
            continue
        flags = {w.split("=", 1)[0].strip("[]") for w in words if w.lstrip("[").startswith("--")}
        problems += [f"{block.doc_line(offset)}: `ordertasks {' '.join(path)}` has no option {flag}"
                     for flag in sorted(flags) if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", done.stdout)]
    assert not problems, "\n".join(problems)


def test_the_command_is_named_one_way() -> None:
    """The docs write ``ordertasks`` (after ``. .venv/bin/activate``), never a path to it."""
    stray = [f"{b.where}: write `ordertasks`, not a path to it" for b in all_blocks()
             if re.search(r"\bbin/ordertasks\b(?![.\w-])", b.text)]
    assert not stray, "\n".join(stray)
