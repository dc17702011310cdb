"""``ordertasks handler`` (functions-framework under gunicorn) in a subprocess, as deployed,
with certificates from a test issuer, and raw-socket requests that stop sending half way."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ordertasks.handlers.config import load_catalog
from tests.support.issuer import TestIssuer
from tests.support.servers import ServerProcess, free_port

REPO = Path(__file__).resolve().parents[2]
DISPATCHER = load_catalog().service_account_email("dispatcher")


@contextmanager
def handler_process(tmp: Path, **settings: str) -> Iterator[tuple[int, TestIssuer, ServerProcess]]:
    """Start the handler on a free port; yield (port, issuer, process); stop both at the end."""
    port = free_port()
    issuer = TestIssuer(audience=f"http://127.0.0.1:{port}/", email=DISPATCHER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERTASKS_", "CLOUD_TASKS_"))}
    env.update({"ORDERTASKS_DATA_DIR": str(tmp), "ORDERTASKS_HANDLER_URL": f"http://127.0.0.1:{port}/",
                "ORDERTASKS_OIDC_CERTS_URL": issuer.certs_url, "PYTHONUNBUFFERED": "1", **settings})
    server = ServerProcess([sys.executable, str(REPO / "cli.py"), "handler", "--port", str(port)], port, env=env,
                           log_path=tmp / "handler.log").start(timeout=60)
    try:
        yield port, issuer, server
    finally:
        server.stop()
        issuer.stop()


def post_head(port: int, headers: dict[str, str], first_bytes: bytes = b"", timeout: float = 10.0) -> bytes:
    """Send a POST's head and ``first_bytes`` of its body, then read what the server answers.

    The rest of the announced body is never sent: a server that waits for it before answering
    times out here (``socket.timeout`` propagates).
    """
    lines = ["POST / HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall("\r\n".join(lines).encode() + first_bytes)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def status_of(answer: bytes) -> int:
    """The status code of a raw HTTP answer."""
    return int(answer.split(b" ", 2)[1])
