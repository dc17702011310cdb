"""The ``ordertasks`` command: one entry point, each subcommand owned by its package.

Subcommands are imported lazily so that ``ordertasks emulator`` never loads Flask and
``ordertasks failed list`` never loads the emulator.

A reader that goes away (``ordertasks failed list | head -1``) ends the command quietly with
status 141, as git and coreutils end when SIGPIPE kills them; Python's own handling would print
a ``BrokenPipeError`` traceback. ``--version`` is the installed distribution's version.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence

# subcommand -> (module, function taking argv, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "emulator": ("ordertasks.infra.emulator.server", "main", "run the local Cloud Tasks v2 emulator"),
    "dev": ("ordertasks.infra.devstack", "main", "start the whole local stack"),
    "demo": ("ordertasks.infra.demo", "main", "place N orders through the local stack and watch them"),
    "handler": ("ordertasks.functions.serve", "main", "serve the task handler under functions-framework"),
    "checkout": ("ordertasks.producer.serve", "main", "serve the checkout API"),
    "failed": ("ordertasks.producer.triage", "main", "list, show, replay and resolve failed tasks"),
    "sweep": ("ordertasks.producer.triage", "sweep_main", "replay failed tasks marked replay_requested"),
    "reconcile": ("ordertasks.producer.reconcile", "main", "enqueue outbox entries still pending"),
    "relay": ("ordertasks.producer.outbox.cli", "relay_main", "move committed transactional-outbox rows to Cloud Tasks"),
    "outbox": ("ordertasks.producer.outbox.cli", "outbox_main", "create (init), print (sql) or count (status) the outbox tables"),
    "products": ("ordertasks.producer.products", "main", "import and list the checkout's price book"),
    "stats": ("ordertasks.producer.stats", "main", "queue depth and per-kind done/failed counts"),
    "deploy": ("ordertasks.infra.deploy", "main", "plan, apply or destroy the Google Cloud deployment"),
    "console": ("ordertasks.infra.console.serve", "main", "web console: queues, orders, failed tasks (http://127.0.0.1:8088/)"),
}


# Commands checked here against the catalog ORDERTASKS_CONFIG names. dev and deploy check their
# own (--config, else ORDERTASKS_CONFIG); the emulator stands alone (--queues).
CATALOG_FROM_ENVIRONMENT = frozenset({"handler", "checkout", "failed", "sweep", "reconcile", "stats", "console",
                                      "demo", "products", "relay", "outbox"})


# What a command needs beyond `pip install ordertasks` (the library): the extra of pyproject that
# installs it. Every other command runs on the library's dependencies alone.
COMMAND_EXTRA = {"emulator": "local", "dev": "all", "handler": "handler", "checkout": "checkout",
                 "console": "console"}

# The modules only an extra installs, and the extra that does: a command met one it has no extra
# for when a catalog's kind needs it (the invoice kind's reportlab).
EXTRA_OF_MODULE = {"aiohttp": "local", "aiosmtpd": "local", "functions_framework": "handler",
                   "gunicorn": "handler", "uvicorn": "handler", "uvicorn_worker": "handler",
                   "reportlab": "handler", "flask": "checkout", "werkzeug": "checkout", "stripe": "checkout",
                   "email_validator": "checkout"}


# Of those, the commands that run effects, or start or feed the processes that do, also resolve
# every kind (import each shop's effect module) at start. The others only read records, write
# operator state or create a replay's task, which the handler performs: they need the catalog
# alone, so they work where the shop's code is not installed.
RESOLVES_KINDS = frozenset({"handler", "checkout", "reconcile", "demo", "relay"})


def _check_catalog(name: str) -> None:
    """Refuse to run on an invalid catalog or a kind without code, and, for a command in
    ``RESOLVES_KINDS``, on one whose kinds do not resolve (the message names file and line)."""
    from ordertasks.handlers.config import Settings
    from ordertasks.handlers.registry import KindRegistry, check_kinds_have_code

    catalog = Settings.from_env().catalog()
    if name in RESOLVES_KINDS:
        KindRegistry.from_catalog(catalog)
    else:
        check_kinds_have_code(catalog)


def usage() -> str:
    """The top-level help text."""
    lines = ["usage: ordertasks <command> [options]", "       ordertasks --version", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines.append("\nRun `ordertasks <command> --help` for a command's options.")
    return "\n".join(lines)


def put_working_directory_on_path() -> None:
    """Let ``effect = "shop_kinds:award_points"`` name a module of the directory the command runs
    in, as ``python -m`` and uvicorn do: the console script's own ``sys.path`` starts with its
    ``bin/`` directory, so a shop's kinds beside its catalog would not import otherwise."""
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)


def version() -> str:
    """``ordertasks 0.1.0``: the installed distribution's version (its metadata, not a constant)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return f"ordertasks {installed_version('ordertasks')}"
    except PackageNotFoundError:
        return "ordertasks (not installed, so no version: run `pip install -e .` in the checkout)"


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a subcommand; return its exit status (141 when the reader of stdout went away)."""
    try:
        try:
            return dispatch(list(sys.argv[1:] if argv is None else argv))
        finally:                # argparse's --help exits: its output is flushed here too
            sys.stdout.flush()  # a reader gone shows here, not in the interpreter's last flush
    except BrokenPipeError:
        return reader_gone()


def reader_gone() -> int:
    """The Python documentation's recipe for a closed pipe: stdout goes to devnull so the
    interpreter's final flush cannot fail again; the status is a SIGPIPE death's (128 + 13)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 128 + signal.SIGPIPE


def dispatch(args: list[str]) -> int:
    """Run the subcommand ``args`` names; return its exit status."""
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] in ("-V", "--version"):
        print(version())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"ordertasks: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, func_name, _ = COMMANDS[name]
    put_working_directory_on_path()
    try:
        return _run(name, getattr(importlib.import_module(module_name), func_name), rest)
    except ModuleNotFoundError as exc:
        module, extra = missing_extra(name, exc)
        if extra is None:
            raise
        print(f"ordertasks {name}: needs {module}, which the '{extra}' extra installs: "
              f"pip install 'ordertasks[{extra}]'", file=sys.stderr)
        return 2


def _run(name: str, func: Callable[[list[str]], int | None], rest: list[str]) -> int:
    from ordertasks.handlers.errors import ConfigurationError
    from ordertasks.producer.backend_flags import LocalStackMissing

    try:
        if name in CATALOG_FROM_ENVIRONMENT and not asks_for_help(rest):
            _check_catalog(name)
        return int(func(rest) or 0)
    except ConfigurationError as exc:
        print(f"ordertasks {name}: configuration error: {exc}", file=sys.stderr)
        return 2
    except LocalStackMissing as exc:
        print(f"ordertasks {name}: {exc}", file=sys.stderr)
        return 1


def asks_for_help(rest: Sequence[str]) -> bool:
    """True for ``ordertasks <command> … --help``: the options are shown whatever the catalog."""
    return any(arg in ("-h", "--help") for arg in rest)


def missing_extra(command: str, exc: ModuleNotFoundError) -> tuple[str, str | None]:
    """The missing module's top-level name and the extra that installs it (the command's own, else
    the module's); ``None`` for a module no extra installs: that one is a bug, not an install."""
    module = (exc.name or "").split(".")[0]
    if module not in EXTRA_OF_MODULE:
        return module, None
    return module, COMMAND_EXTRA.get(command, EXTRA_OF_MODULE[module])


if __name__ == "__main__":
    sys.exit(main())
