"""Issue 28 H1: ``ordertasks handler`` with one worker was blocked by 16 slow sockets (22 s).
Its gunicorn worker now reads each request whole before a thread takes it. The handler takes
only POSTs, so the probe's ``GET /healthz`` is answered 405: what counts is that it is answered."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ordertasks.functions.serve import READ_SECONDS
from tests.security.handler_process import handler_process
from tests.security.slow_clients import SlowClients, probe_while
from tests.support.servers import wait_until


@pytest.fixture(scope="module")
def handler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """``ordertasks handler`` (one worker, OIDC on) on a free port."""
    with handler_process(tmp_path_factory.mktemp("handler")) as (port, _, _):
        yield port


@pytest.mark.parametrize("count", [8, 64])
def test_the_handler_answers_while_clients_send_slowly(handler: int, count: int) -> None:
    """Attack: ``count`` sockets trickle headers and ``count`` trickle an unauthenticated body."""
    with SlowClients(handler, count):
        answers = probe_while(handler)
    assert all(status == 405 and seconds < 2.0 for seconds, status in answers), answers


def test_a_slow_client_is_disconnected_after_the_read_deadline(handler: int) -> None:
    """Attack: the same sockets kept trickling; each must end, not hold its socket for ever."""
    with SlowClients(handler, 2) as clients:
        wait_until(clients.all_closed, timeout=READ_SECONDS + 4, interval=0.2, what="the server closing slow sockets")
    assert all(READ_SECONDS - 1 <= lasted <= READ_SECONDS + 3 for lasted in clients.lasted.values()), clients.lasted
