"""The flags every operator command shares: which backend, project, location, emulator.

``--backend/--project/--location/--emulator-host/--data-dir`` override what
``Settings.from_env()`` read (``ORDERTASKS_BACKEND``, ``ORDERTASKS_PROJECT``,
``ORDERTASKS_LOCATION``, ``CLOUD_TASKS_EMULATOR_HOST``, ``ORDERTASKS_DATA_DIR``), so the
environment keeps working and a flag wins over it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ordertasks.handlers.settings import Backend, Settings

CREDENTIALS_HINT = ("no Google Cloud credentials found: run `gcloud auth application-default login` "
                    "(or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file), then try again")


def add_backend_flags(parser: argparse.ArgumentParser) -> None:
    """Add the shared flags to ``parser``."""
    group = parser.add_argument_group("where to look (flags override ORDERTASKS_* variables)")
    group.add_argument("--backend", choices=[backend.value for backend in Backend],
                       help="local: SQLite + the Cloud Tasks emulator; cloud: Firestore + Cloud Tasks")
    group.add_argument("--project", help="Google Cloud project (default: the catalog's)")
    group.add_argument("--location", help="Cloud Tasks location (default: the catalog's region)")
    group.add_argument("--emulator-host", metavar="HOST:PORT",
                       help="Cloud Tasks emulator (as CLOUD_TASKS_EMULATOR_HOST; local default 127.0.0.1:8123)")
    group.add_argument("--data-dir", type=Path, help="local state directory (default var/)")


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
