"""Issue 28, F1: webhook kinds followed redirects. A 307 re-POSTed the order's name, email and
address to another host; a 307 to the checkout's own ``/api/orders/<id>/cancel`` cancelled and
refunded the order, and the webhook still counted as done.

Each test runs the real handler (``tests/functions`` stack: HTTP server, OIDC, SQLite) against
the warehouse stand-in in ``redirect`` mode, with real servers on loopback as the targets.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.functions.conftest import HandlerStack

KIND = "notify_warehouse"


class Recorder:
    """A far end on ``host`` that records every request, whatever its method, and answers 200."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.requests: list[tuple[str, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                recorder.requests.append((self.command, self.path))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_DELETE = _record  # noqa: N815 - http.server's naming

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def other_host() -> Iterator[Recorder]:
    """Another host (127.0.0.2): where a redirect would re-POST the order's personal data."""
    recorder = Recorder("127.0.0.2")
    yield recorder
    recorder.stop()


@pytest.fixture
def checkout() -> Iterator[Recorder]:
    """Stands in for the checkout's own API: a POST to /api/orders/<id>/cancel would cancel and refund."""
    recorder = Recorder()
    yield recorder
    recorder.stop()


def _target(name: str, other_host: Recorder, checkout: Recorder, order: str) -> str:
    if name == "another host":
        return f"{other_host.url}/collect?api_key=LEAKED-KEY"
    return f"{checkout.url}/api/orders/{order}/cancel?secret=CANCEL-SECRET"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("where", ["another host", "the checkout's cancel endpoint"])
def test_a_redirect_is_a_failed_record_and_nothing_reaches_its_target(
        stack: HandlerStack, other_host: Recorder, checkout: Recorder, status: int, where: str) -> None:
    """Attack: the warehouse answers 307 to another host or to /api/orders/<id>/cancel; the handler
    re-POSTed the order there (cancelling and refunding it) and counted the webhook as done."""
    order = f"ord_redirect_{status}"
    target = _target(where, other_host, checkout, order)
    stack.warehouse.state.mode, stack.warehouse.state.redirect_status = "redirect", status
    stack.warehouse.state.redirect_to = target
    answer = stack.deliver(stack.task(KIND, order))
    assert (answer.status_code, answer.json()["outcome"]) == (200, "dead")
    assert other_host.requests == [] and checkout.requests == []
    record = stack.store.failed.get_failed(f"{order}:{KIND}")
    assert record is not None and record.error_type == "Rejected"
    assert f"redirecting to {target.split('?')[0]}?[redacted]" in record.error
    assert "LEAKED-KEY" not in record.error and "CANCEL-SECRET" not in record.error
    effect = stack.store.effects.get_effect(order, KIND)
    assert effect is None or effect.state != "done"
