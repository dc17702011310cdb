"""The console's defences: a Host allow-list, CSRF tokens on every POST, strict headers.

- **Host allow-list, always.** A request whose ``Host`` is not an allowed name is refused
  with 400 before any page runs, so it gets no page, no session and no CSRF token. Allowed:
  loopback names and addresses (``localhost``, ``127.x.y.z``, ``[::1]``), the ``--host`` the
  console listens on (unless it is a wildcard such as ``0.0.0.0``), and each
  ``--allowed-host NAME``. This is what stops DNS rebinding: a page on ``evil.example`` whose
  name an attacker re-points at the console's address still sends ``Host: evil.example``.
  Binding ``0.0.0.0`` therefore never means "any Host": name the ones people use.
- **CSRF.** Every state change is a POST carrying ``csrf_token``, a random value kept in the
  signed session cookie (``SameSite=Strict``, ``HttpOnly``). A POST without it, or with another
  one, is refused with 400 and changes nothing. A POST whose ``Origin`` names another site is
  refused with 403.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import Flask, abort, request, session

TOKEN_FIELD = "csrf_token"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def host_name(host: str) -> str:
    """The name part of a ``Host`` header or ``--host`` value: no port, no brackets, lower case."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host[1:]
    # One colon: name:port. More than one: a bare IPv6 address (a --host value), kept whole.
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(name: str) -> bool:
    """A loopback name or address: a page cannot be served from one to reach another machine."""
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostAllowList:
    """The names a console answers to: loopback, its bind address, and the ``--allowed-host`` names."""

    def __init__(self, bind_host: str, extra: Iterable[str] = ()) -> None:
        names = {host_name(h) for h in (bind_host, *extra)}
        self.names = frozenset(names - WILDCARD_BINDS)

    def allows(self, host_header: str) -> bool:
        """Whether a request carrying this ``Host`` may reach a page."""
        name = host_name(host_header)
        return bool(name) and (is_loopback(name) or name in self.names)

    def refusal(self, host_header: str) -> str:
        """The 400 page's text: what was refused and how to allow it on purpose."""
        shown = host_header[:100] or "(none)"
        named = ", ".join(sorted(self.names - {"localhost"})) or "no other names"
        return (f"this console does not answer to the host name {shown!r}; it answers to loopback names and "
                f"{named}. If you reach it by that name on purpose, restart it with "
                f"--allowed-host {host_name(host_header) or 'NAME'}")


def csrf_token() -> str:
    """This session's token (created on first use); templates put it in every form."""
    if TOKEN_FIELD not in session:
        session[TOKEN_FIELD] = secrets.token_urlsafe(32)
    return str(session[TOKEN_FIELD])


def _check_host(allowed: HostAllowList) -> None:
    # Runs before every page (routing errors included), so a refused Host never reaches a
    # view that would start a session and hand out a CSRF token.
    host = request.headers.get("Host", "")
    if not allowed.allows(host):
        abort(400, description=allowed.refusal(host))


def _check_post() -> None:
    if request.method != "POST":
        return
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        abort(403, description=f"this form was sent from {origin}, not from the console; nothing was changed")
    sent, expected = request.form.get(TOKEN_FIELD, ""), session.get(TOKEN_FIELD, "")
    if not sent or not expected or not hmac.compare_digest(str(sent), str(expected)):
        abort(400, description="the form's security token is missing or out of date (the console may have "
                               "restarted); nothing was changed. Reload the page and try again")


def _add_headers(response):  # type: ignore[no-untyped-def]
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def protect(app: Flask, host: str, allowed_hosts: Iterable[str] = ()) -> HostAllowList:
    """Install the Host allow-list (``host`` plus ``allowed_hosts``), the CSRF check and the headers."""
    allowed = HostAllowList(host, allowed_hosts)
    app.secret_key = secrets.token_bytes(32)
    app.config.update(SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_NAME="ordertasks_console")
    app.before_request(lambda: _check_host(allowed))
    app.before_request(_check_post)
    app.after_request(_add_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
    return allowed
