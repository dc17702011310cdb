"""A private PostgreSQL cluster for the tests: ``initdb`` into a temporary directory, ``pg_ctl
start`` on a free loopback port (its unix socket in the same directory), one per session.

Debian keeps ``initdb`` and ``pg_ctl`` in ``/usr/lib/postgresql/<version>/bin``, off ``PATH``;
they are found there too. PostgreSQL refuses to run as root, so as root the cluster belongs
to the ``postgres`` user the package creates. Without the binaries a test skips locally with
the reason and fails under ``REQUIRE_EMULATORS=1`` (``.ci/run`` installs the package).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import REQUIRE_EMULATORS, free_port, wait_until

START_SECONDS = 60


def _missing(message: str) -> None:
    if REQUIRE_EMULATORS:
        pytest.fail(message + " (REQUIRE_EMULATORS=1: this must run in CI)")
    pytest.skip(message)


def postgres_bin() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: on ``PATH``, else Debian's newest."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not versions:
        _missing("initdb not found (on PATH or in /usr/lib/postgresql/*/bin): the outbox tests need a real "
                 "PostgreSQL server; install Debian's postgresql package")
    return Path(versions[-1]).parent


class PostgresCluster:
    """One running cluster; ``new_database()`` gives each test a database of its own."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.owner = self._owner()
        # As root the cluster's directory must be reachable by the postgres user: /tmp, not $TMPDIR.
        self.root = Path(tempfile.mkdtemp(prefix="ordertasks-pg-", dir="/tmp" if self.owner else None))
        self.data = self.root / "data"
        self.port = free_port()

    def _owner(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            _missing("PostgreSQL refuses to run as root and there is no postgres user to run it as")
            raise

    def _run(self, *argv: str, timeout: float = START_SECONDS) -> None:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if self.owner is not None:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}{done.stdout[-2000:]}")

    def start(self) -> "PostgresCluster":
        """initdb, then pg_ctl start on the free port; returns once it accepts connections."""
        if self.owner is not None:
            os.chown(self.root, self.owner.pw_uid, self.owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} "
                   "-c fsync=off -c max_connections=60")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options, "-w",
                  "-t", str(START_SECONDS), "start")
        wait_until(self._answers, timeout=START_SECONDS, what=f"PostgreSQL on port {self.port}")
        return self

    def _answers(self) -> bool:
        import psycopg

        with psycopg.connect(self.url("postgres"), connect_timeout=2):
            return True

    def url(self, database: str) -> str:
        """A libpq URL for ``database`` (trust authentication, loopback TCP)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        """pg_ctl stop (fast), then remove the cluster's directory."""
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", timeout=30)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


_shared: list[PostgresCluster] = []
_users = 0


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """The session's cluster, started once however many modules ask for it."""
    global _users
    try:
        import psycopg  # noqa: F401 - the tests' client
    except ModuleNotFoundError:
        _missing("psycopg 3 is not installed: pip install -r requirements-dev.txt")
    if not _shared:
        _shared.append(PostgresCluster().start())
    _users += 1
    try:
        yield _shared[0]
    finally:
        _users -= 1
        if _users == 0:
            _shared.pop().stop()
