"""Slow clients (slowloris), the checkout as ``ordertasks deploy`` runs it, and a probe that
asks a server for a quick answer while they hold their sockets open."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ordertasks.infra.deploy._services import GUNICORN
from ordertasks.producer.pricebook_sqlite import SqlitePriceBook
from ordertasks.producer.products import DEMO_CATALOGUE, import_file
from tests.support.servers import ServerProcess, free_port, http_ok

REPO = Path(__file__).resolve().parents[2]
HEAD_LINE = b"X-Slow: 1\r\n"


class SlowClients:
    """``count`` sockets sending a request's headers a byte a second, and ``count`` sending a
    ``Content-Length`` body a byte a second, all from one thread; none ever finishes. Remembers
    how long each lasted before the server closed it."""

    def __init__(self, port: int, count: int, body_path: str = "/") -> None:
        self.port, self.count, self.body_path = port, count, body_path
        self.sockets: list[socket.socket] = []
        self.lasted: dict[int, float] = {}          # socket index → seconds until the server closed it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self) -> "SlowClients":
        heads = [b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"] * self.count
        bodies = [f"POST {self.body_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  f"Content-Length: 10000\r\n\r\n{{".encode()] * self.count
        for first in heads + bodies:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            sock.sendall(first)
            sock.setblocking(False)
            self.sockets.append(sock)
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.sockets:
            sock.close()

    def all_closed(self) -> bool:
        """True once the server has closed every slow socket."""
        return len(self.lasted) == len(self.sockets)

    def _trickle(self) -> None:
        second = 0
        while not self._stop.wait(1.0):             # the attack's own pace: one byte a second
            for index, sock in enumerate(self.sockets):
                if index not in self.lasted and self._closed_by_server(sock, second, index < self.count):
                    self.lasted[index] = time.monotonic() - self.started
            second += 1

    @staticmethod
    def _closed_by_server(sock: socket.socket, second: int, head: bool) -> bool:
        try:
            if sock.recv(4096) == b"":
                return True
        except BlockingIOError:
            pass
        except OSError:
            return True
        try:
            sock.send(HEAD_LINE[second % len(HEAD_LINE):][:1] if head else b" ")
        except OSError:
            return True
        return False


def answer_time(port: int, path: str = "/healthz", timeout: float = 10.0) -> tuple[float, int]:
    """(seconds, status) of one ``GET path``; the status is 0 when no answer came in ``timeout``."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
    except OSError:
        status = 0
    return time.monotonic() - started, status


def probe_while(port: int, times: int = 5, interval: float = 0.4) -> list[tuple[float, int]]:
    """``answer_time`` ``times`` times, ``interval`` apart: what a health check sees meanwhile."""
    answers = []
    for _ in range(times):
        answers.append(answer_time(port))
        time.sleep(interval)                        # spread the probes over the attack, not waiting for work
    return answers


def deployed_checkout_argv(port: int) -> list[str]:
    """The checkout's server command from the deploy plan (``GUNICORN``), bound to ``port`` on loopback."""
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    return [gunicorn, *(f"--bind=127.0.0.1:{port}" if arg.startswith("--bind=") else arg for arg in GUNICORN)]


def local_checkout_argv(port: int) -> list[str]:
    """``ordertasks checkout`` (werkzeug's threaded server) on ``port``."""
    return [sys.executable, str(REPO / "cli.py"), "checkout", "--port", str(port)]


@contextmanager
def deployed_checkout(tmp: Path, argv: Callable[[int], list[str]] = deployed_checkout_argv) -> Iterator[int]:
    """The checkout as ``ordertasks deploy`` runs it (or as ``argv`` does), on the local backend:
    the demo price book, local payments, nothing at the Cloud Tasks address (orders get 202)."""
    import_file(SqlitePriceBook(tmp / "ordertasks.db"), DEMO_CATALOGUE, if_empty=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERTASKS_", "CLOUD_TASKS_"))}
    env.update({"ORDERTASKS_DATA_DIR": str(tmp), "CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{free_port()}",
                "ORDERTASKS_ENQUEUE_TIMEOUT": "1"})
    server = ServerProcess(argv(port), port, env=env, log_path=tmp / "checkout.log",
                           ready=lambda: http_ok(port)).start(timeout=60)
    try:
        yield port
    finally:
        server.stop()
