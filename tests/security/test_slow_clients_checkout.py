"""Issue 28 N2: the checkout as ``ordertasks deploy`` runs it stopped answering while 8 clients
sent their headers or bodies slowly (gunicorn ``--threads=8``: ``/healthz`` timed out after 12 s).
The deploy plan's server command now reads each request whole before a thread takes it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ordertasks.functions.serve import READ_SECONDS
from tests.security.slow_clients import SlowClients, deployed_checkout, probe_while
from tests.support.servers import wait_until


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The deployed checkout's port."""
    with deployed_checkout(tmp_path_factory.mktemp("checkout")) as port:
        yield port


@pytest.mark.parametrize("count", [8, 64])
def test_healthz_answers_while_clients_send_slowly(checkout: int, count: int) -> None:
    """Attack: ``count`` sockets trickle headers and ``count`` trickle a body, a byte a second."""
    with SlowClients(checkout, count, body_path="/api/checkout"):
        answers = probe_while(checkout)
    assert all(status == 200 and seconds < 2.0 for seconds, status in answers), answers


def test_a_slow_client_is_disconnected_after_the_read_deadline(checkout: int) -> None:
    """Attack: the same sockets kept trickling; each must end, not hold its socket for ever."""
    with SlowClients(checkout, 2, body_path="/api/checkout") as clients:
        wait_until(clients.all_closed, timeout=READ_SECONDS + 4, interval=0.2, what="the server closing slow sockets")
    assert all(READ_SECONDS - 1 <= lasted <= READ_SECONDS + 3 for lasted in clients.lasted.values()), clients.lasted
