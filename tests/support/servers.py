"""Helpers for tests that run real servers on loopback: ports, readiness, subprocesses."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")
REQUIRE_EMULATORS = os.environ.get("REQUIRE_EMULATORS", "") not in ("", "0", "false")


class ProcessExited(AssertionError):
    """The server a test waits for is gone: waiting longer cannot help."""


def log_tail(path: Path | None, lines: int = 40) -> str:
    """The last ``lines`` lines of a server's log, for a failure message ("" without a log)."""
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def _ephemeral_floor() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


PORTS_BELOW_EPHEMERAL = range(20000, max(20001, _ephemeral_floor()))
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, never handed out before in
    this run, and below the kernel's ephemeral range: a port from that range (what binding
    port 0 gives) can be taken by an outbound connection (the emulator's dispatcher opens
    hundreds) between this choice and the server's own bind, which then fails with
    EADDRINUSE."""
    for _ in range(200):
        port = random.choice(PORTS_BELOW_EPHEMERAL)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as sock:  # a crowded range: the kernel's choice
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except ProcessExited:
            raise
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last_error!r}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def http_ok(port: int, path: str = "/healthz") -> bool:
    """True when ``GET http://127.0.0.1:port<path>`` answers 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=0.5) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def need_binary(name: str, why: str) -> str:
    """Path of ``name``; skip the test locally, fail it in CI (REQUIRE_EMULATORS=1)."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not found on PATH: {why}"
    if REQUIRE_EMULATORS:
        pytest.fail(message + " (REQUIRE_EMULATORS=1: this must run in CI)")
    pytest.skip(message)


class ServerProcess:
    """A subprocess serving on a loopback port; started, awaited and stopped by tests."""

    def __init__(self, argv: Sequence[str], port: int, env: dict[str, str] | None = None,
                 log_path: Path | None = None, ready: Callable[[], bool] | None = None,
                 cwd: Path | None = None) -> None:
        self.argv, self.port, self.env, self.log_path, self.cwd = list(argv), port, env, log_path, cwd
        self.ready = ready or (lambda: port_open(port))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> "ServerProcess":
        """Start the process in its own process group and wait until it is ready."""
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=self.cwd)
        try:
            wait_until(self._alive_and_ready, timeout=timeout, interval=0.1,
                       what=f"{' '.join(self.argv[:3])} on port {self.port}")
        except BaseException:
            self.stop()
            raise
        return self

    def _alive_and_ready(self) -> bool:
        """Ready now; a process that already exited fails the wait at once, with its log's end."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ProcessExited(f"{' '.join(self.argv[:3])} exited with {self.proc.returncode}; "
                                f"log {self.log_path} ends:\n{log_tail(self.log_path)}")
        return self.ready()

    def kill9(self) -> None:
        """SIGKILL the whole process group, as a crash would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL if it lingers."""
        if not self.proc or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
