"""The flags every operator command shares: which backend, project, location, emulator.

``--backend/--project/--location/--emulator-host/--data-dir`` override what
``Settings.from_env()`` read (``ORDERTASKS_BACKEND``, ``ORDERTASKS_PROJECT``,
``ORDERTASKS_LOCATION``, ``CLOUD_TASKS_EMULATOR_HOST``, ``ORDERTASKS_DATA_DIR``), so the
environment keeps working and a flag wins over it.

The commands that read (``failed``, ``stats``, ``sweep``, ``reconcile``, the console) refuse a
local data directory that holds no ordertasks data unless ``--init`` is given: a mistyped
``--data-dir`` would otherwise create an empty store and answer "nothing there". Those that
talk to Cloud Tasks locally first check that the emulator accepts a connection, so a stack that
is down is one line naming the address tried and how to start it, within seconds, not a retry
loop's minute of ``503 failed to connect``. Both raise ``LocalStackMissing``; ``ordertasks.cli``
prints it (exit 1).
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from ordertasks.handlers.errors import OrderTasksError
from ordertasks.handlers.settings import Backend, Settings

START_THE_STACK = "start the local stack with `make dev` or `ordertasks dev`"
CONNECT_SECONDS = 2.0


class LocalStackMissing(OrderTasksError):
    """The local data or the Cloud Tasks emulator a command needs is not there; the message
    names what was tried and how to start it."""


CREDENTIALS_HINT = ("no Google Cloud credentials found: run `gcloud auth application-default login` "
                    "(or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file), then try again")


def add_backend_flags(parser: argparse.ArgumentParser, *, init: bool = False) -> None:
    """Add the shared flags to ``parser`` (and ``--init``, for a command that reads local data)."""
    group = parser.add_argument_group("where to look (flags override ORDERTASKS_* variables)")
    group.add_argument("--backend", choices=[backend.value for backend in Backend],
                       help="local: SQLite + the Cloud Tasks emulator; cloud: Firestore + Cloud Tasks")
    group.add_argument("--project", help="Google Cloud project (default: the catalog's)")
    group.add_argument("--location", help="Cloud Tasks location (default: the catalog's region)")
    group.add_argument("--emulator-host", metavar="HOST:PORT",
                       help="Cloud Tasks emulator (as CLOUD_TASKS_EMULATOR_HOST; local default 127.0.0.1:8123)")
    group.add_argument("--data-dir", type=Path, help="local state directory (default var/)")
    if init:
        group.add_argument("--init", action="store_true",
                           help="create an empty local store when the data directory holds none (without it, "
                                "a directory with no ordertasks data is an error: a mistyped --data-dir)")


def settings_with_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    """``settings`` with every flag that was given applied."""
    given = {flag: value for flag in ("backend", "project", "location", "emulator_host", "data_dir")
             if (value := getattr(args, flag, None)) is not None}
    changes: dict[str, object] = {name: given[name] for name in ("backend", "project", "location") if name in given}
    if "emulator_host" in given:
        changes["tasks"] = {"emulator_host": given["emulator_host"]}
    if "data_dir" in given:
        changes["store"] = {"data_dir": given["data_dir"]}
    return settings.with_changes(**changes) if changes else settings


def is_missing_credentials(exc: BaseException) -> bool:
    """True when ``exc`` means application-default credentials are absent or unusable."""
    from google.auth import exceptions as auth_exceptions

    return isinstance(exc, (auth_exceptions.DefaultCredentialsError, auth_exceptions.RefreshError))


INIT_REMEDY = ("check --data-dir or ORDERTASKS_DATA_DIR; start the local stack there with "
               "`ordertasks dev --data-dir {data_dir}`, or pass --init to start from an empty store")


def require_local_data(settings: Settings, remedy: str = INIT_REMEDY) -> None:
    """Raise ``LocalStackMissing`` when the local backend's SQLite store does not exist yet;
    ``remedy`` (``{data_dir}`` filled in) says what to do."""
    if settings.backend is not Backend.LOCAL or settings.store.sqlite_file.exists():
        return
    where = settings.store.sqlite_file
    raise LocalStackMissing(f"no ordertasks data in {where.parent} (no {where.name}): "
                            + remedy.format(data_dir=where.parent))


def require_tasks_api(settings: Settings, timeout: float = CONNECT_SECONDS) -> None:
    """Raise ``LocalStackMissing`` when the Cloud Tasks emulator the settings name (locally, or
    ``CLOUD_TASKS_EMULATOR_HOST``) does not accept a connection within ``timeout`` seconds.
    Google's service is not probed: its client reports its own errors."""
    from ordertasks.producer.wiring import emulator_host

    host = emulator_host(settings)
    if host is None:
        return
    address = host.split("://", 1)[-1].rstrip("/")
    name, _, port = address.rpartition(":")
    try:
        socket.create_connection((name.strip("[]") or "127.0.0.1", int(port)), timeout=timeout).close()
    except ValueError:
        raise LocalStackMissing(f"the Cloud Tasks emulator address {address!r} has no port: "
                                "write CLOUD_TASKS_EMULATOR_HOST as HOST:PORT, e.g. 127.0.0.1:8123") from None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise LocalStackMissing(f"cannot reach the Cloud Tasks emulator at {address} ({reason.lower()}): "
                                f"{START_THE_STACK}, or point CLOUD_TASKS_EMULATOR_HOST at the one that runs") from None


def reading_settings(args: argparse.Namespace, *, tasks_api: bool = False) -> Settings:
    """The settings of a command that reads local state: flags applied, the data directory checked
    (unless ``--init``) and, with ``tasks_api``, the Cloud Tasks emulator reached."""
    settings = settings_with_flags(Settings.from_env(), args)
    if not getattr(args, "init", False):
        require_local_data(settings)
    if tasks_api:
        require_tasks_api(settings)
    return settings
