"""What keeps a web page from driving a developer's emulator (CSRF, DNS rebinding).

A browser lets any page send a "simple" cross-origin POST (``text/plain`` body, no preflight)
to ``127.0.0.1``, and DNS rebinding lets a page reach it under the page's own host name.
The emulator mints real-looking OIDC tokens, so both matter.  For the API (``/v2/``) and the
controls (``/_emulator/``):

- the ``Host`` header must be a loopback name or address (``localhost``, ``127.x.y.z``,
  ``[::1]``), the ``--host`` the emulator listens on, or a name given with ``--allow-host``;
  otherwise 403;
- a request carrying ``Origin`` (browsers add it to cross-origin and to POST requests) must
  come from the same origin as the request's ``Host``, and one marked
  ``Sec-Fetch-Site: cross-site`` is refused; otherwise 403.

Clients that are not browsers (the client libraries, gcloud, curl) send a loopback ``Host``
and no ``Origin``, so they never notice.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from ordertasks.infra.emulator.errors import RpcError

GUARDED_PREFIXES = ("/v2/", "/_emulator/")
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def host_name(host_header: str) -> str:
    """The host part of a ``Host`` header (no port, no brackets, lower case)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(name: str) -> bool:
    """A loopback name or address."""
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostGuard:
    """The ``Host``/``Origin`` policy above, for one emulator's ``--host`` and ``--allow-host``."""

    def __init__(self, listen_host: str, extra: Iterable[str] = ()) -> None:
        self.allowed = {host_name(h) for h in (listen_host, *extra) if h}
        self.allowed -= {"0.0.0.0", "::", ""}

    def host_allowed(self, host_header: str) -> bool:
        """Whether a request for this ``Host`` may reach the API."""
        name = host_name(host_header)
        return bool(name) and (is_loopback(name) or name in self.allowed)

    def refusal(self, request: web.Request) -> str | None:
        """Why ``request`` is refused, or ``None``."""
        host = request.headers.get("Host", "")
        if not self.host_allowed(host):
            return (f"Host {host[:100]!r} is not allowed: the emulator answers loopback names and addresses "
                    "and its --host; add others with --allow-host")
        if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
            return "cross-site browser requests are not allowed"
        origin = request.headers.get("Origin")
        if origin is not None and urllib.parse.urlsplit(origin).netloc.lower() != host.lower():
            return f"cross-origin request from {origin[:100]!r} is not allowed"
        return None


def guard_middleware(guard: HostGuard) -> Callable[..., Awaitable[web.StreamResponse]]:
    """aiohttp middleware applying ``guard`` to the API and control paths."""
    @web.middleware
    async def check(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.path.startswith(GUARDED_PREFIXES):
            reason = guard.refusal(request)
            if reason is not None:
                error = RpcError("PERMISSION_DENIED", reason)
                return web.json_response(error.to_json(), status=error.http_status)
        return await handler(request)
    return check
