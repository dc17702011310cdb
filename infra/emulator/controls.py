"""Test-suite controls outside the Cloud Tasks API: ``POST /_emulator/reset`` and
``POST /_emulator/drain``.  Both answer only callers on a loopback address.

- ``reset`` drops every task, name tombstone and batch operation and keeps the queues;
  ``?queues=true`` drops the queues (and their re-create window) and the CMEK configs too, so a
  suite can start from nothing.
- ``drain?timeout=SECONDS`` waits until no task of a running queue is due and no attempt is
  in flight: 200 when that holds, 408 after the timeout (default 30 s).  Tasks scheduled for
  later, in retry backoff, or in a paused queue do not hold it up.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable

from aiohttp import web

from ordertasks.infra.emulator.errors import RpcError, invalid
from ordertasks.infra.emulator.service import TasksService

DEFAULT_DRAIN_TIMEOUT = 30.0
MAX_DRAIN_TIMEOUT = 3600.0
POLL_SECONDS = 0.01
InFlight = Callable[[], int]  # attempts running now (the dispatcher's count)


def loopback_peer(request: web.Request) -> bool:
    """True when the caller connected from a loopback address (or a unix socket)."""
    remote = request.remote or ""
    if not remote or remote.startswith("/"):
        return True
    try:
        return ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False


def _flag(value: str, name: str) -> bool:
    if value.lower() in ("", "false", "0"):
        return False
    if value.lower() in ("true", "1"):
        return True
    raise invalid(f"{name} must be true or false (got {value[:40]!r})")


def _timeout(raw: str) -> float:
    try:
        timeout = float(raw) if raw else DEFAULT_DRAIN_TIMEOUT
    except ValueError:
        raise invalid(f"timeout must be a number of seconds (got {raw[:40]!r})") from None
    if not 0 <= timeout <= MAX_DRAIN_TIMEOUT:
        raise invalid(f"timeout must be between 0 and {MAX_DRAIN_TIMEOUT:g} seconds (got {raw[:40]!r})")
    return timeout


def _error(exc: RpcError) -> web.Response:
    return web.json_response(exc.to_json(), status=exc.http_status)


def add_routes(app: web.Application, service: TasksService, in_flight: InFlight) -> None:
    """Mount ``/_emulator/reset`` and ``/_emulator/drain`` on ``app``."""
    async def reset(request: web.Request) -> web.Response:
        if not loopback_peer(request):
            return _error(RpcError("PERMISSION_DENIED", "emulator controls answer loopback callers only"))
        try:
            drop_queues = _flag(request.query.get("queues", ""), "queues")
        except RpcError as exc:
            return _error(exc)
        await service.reset(drop_queues)
        return web.json_response({"reset": True, "queues": drop_queues})

    async def drain(request: web.Request) -> web.Response:
        if not loopback_peer(request):
            return _error(RpcError("PERMISSION_DENIED", "emulator controls answer loopback callers only"))
        try:
            timeout = _timeout(request.query.get("timeout", ""))
        except RpcError as exc:
            return _error(exc)
        if await wait_idle(service, in_flight, timeout):
            return web.json_response({"drained": True})
        return web.json_response({"error": {"code": 408, "status": "DEADLINE_EXCEEDED",
                                             "message": f"tasks still due or in flight after {timeout:g}s: "
                                                        f"{service.due_tasks()} due, {in_flight()} in flight"}},
                                 status=408)

    app.router.add_post("/_emulator/reset", reset)
    app.router.add_post("/_emulator/drain", drain)


async def wait_idle(service: TasksService, in_flight: InFlight, timeout: float) -> bool:
    """Poll until nothing is due or in flight; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while service.due_tasks() or in_flight():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL_SECONDS)
    return True
