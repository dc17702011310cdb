"""The ``ordertasks`` command: one entry point, each subcommand owned by its package.

Subcommands are imported lazily so that ``ordertasks emulator`` never loads Flask and
``ordertasks failed list`` never loads the emulator.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

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
    "products": ("ordertasks.producer.products", "main", "import and list the checkout's price book"),
    "stats": ("ordertasks.producer.stats", "main", "queue depth and per-kind done/failed counts"),
    "deploy": ("ordertasks.infra.deploy", "main", "plan, apply or destroy the Google Cloud deployment"),
    "console": ("ordertasks.infra.console.serve", "main", "web console: queues, orders, failed tasks (http://127.0.0.1:8088/)"),
}


# Commands checked here against the catalog ORDERTASKS_CONFIG names. dev and deploy check their
# own (--config, else ORDERTASKS_CONFIG); the emulator stands alone (--queues).
CATALOG_FROM_ENVIRONMENT = frozenset({"handler", "checkout", "failed", "sweep", "reconcile", "stats", "console",
                                      "demo", "products"})


# What the local stack (emulator, dev SMTP sink) needs beyond the runtime dependencies:
# pyproject's ``local`` extra.
LOCAL_EXTRA = frozenset({"aiohttp", "aiosmtpd"})


# Of those, the commands that run effects, or start or feed the processes that do, also resolve
# every kind (import each shop's effect module) at start. The others only read records, write
# operator state or create a replay's task, which the handler performs: they need the catalog
# alone, so they work where the shop's code is not installed.
RESOLVES_KINDS = frozenset({"handler", "checkout", "reconcile", "demo"})


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
    lines = ["usage: ordertasks <command> [options]", "", "commands:"]
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


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a subcommand; return its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"ordertasks: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, func_name, _ = COMMANDS[name]
    put_working_directory_on_path()
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except ModuleNotFoundError as exc:
        if exc.name not in LOCAL_EXTRA:
            raise
        print(f"ordertasks {name}: needs {exc.name}, part of the local stack's extra: "
              "pip install 'ordertasks[local]'", file=sys.stderr)
        return 2
    from ordertasks.handlers.errors import ConfigurationError

    try:
        if name in CATALOG_FROM_ENVIRONMENT:
            _check_catalog(name)
        return int(func(rest) or 0)
    except ConfigurationError as exc:
        print(f"ordertasks {name}: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
