"""Every option of every subcommand says what it does, and ``--help`` reads as plain text.

The parsers are the ones the commands build: each subcommand's entry point is run with
``--help`` and its parser is taken from the traceback of argparse's exit (every module builds
its parser inside its entry point; nothing is patched). What a reader sees is checked on the
real ``--help`` output of the installed command.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
from importlib.metadata import version

import pytest

from ordertasks.cli import COMMANDS
from tests.cli.conftest import Cli


def parser_of(command: str) -> argparse.ArgumentParser:
    """The parser ``ordertasks COMMAND`` builds, as it printed its help."""
    module, function, _ = COMMANDS[command]
    entry_point = getattr(importlib.import_module(module), function)
    with contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as exited:
        entry_point(["--help"])
    tb = exited.tb
    while tb is not None:
        found = [v for v in tb.tb_frame.f_locals.values() if isinstance(v, argparse.ArgumentParser)]
        if found:
            return found[0]
        tb = tb.tb_next
    raise AssertionError(f"ordertasks {command} --help exited without an argparse parser on the way")


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """``{"list": …, "show": …}`` for a parser with actions (``failed``, ``products``), else ``{}``."""
    return {name: sub for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name, sub in action.choices.items()}


def undocumented(parser: argparse.ArgumentParser) -> list[str]:
    """``prog: --flag`` for each option or argument of ``parser`` (and its actions') without help."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if not (action.help or "").strip():
            missing.append(f"{parser.prog}: {'/'.join(action.option_strings) or action.dest}")
        if isinstance(action, argparse._SubParsersAction):
            missing += [f"{parser.prog} {choice.dest}" for choice in action._choices_actions
                        if not (choice.help or "").strip()]
    return missing + [gap for sub in subparsers(parser).values() for gap in undocumented(sub)]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_has_help(command: str) -> None:
    assert undocumented(parser_of(command)) == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_is_plain_text(cli: Cli, command: str) -> None:
    """No reST (``double backquotes``) from a module docstring reaches the terminal."""
    for path in [[command]] + [[command, action] for action in subparsers(parser_of(command))]:
        done = cli(*path, "--help")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"usage: ordertasks {' '.join(path)}"), done.stdout[:200]
        assert "``" not in done.stdout, f"ordertasks {' '.join(path)} --help shows reST:\n{done.stdout}"


def test_the_command_list_is_plain_text(cli: Cli) -> None:
    done = cli("--help")
    assert done.returncode == 0 and "``" not in done.stdout
    assert all(f"  {name} " in done.stdout for name in COMMANDS)
    assert "ordertasks --version" in done.stdout


def test_version_is_the_installed_distributions(cli: Cli) -> None:
    done = cli("--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"ordertasks {version('ordertasks')}\n", "")
