"""The console's defences: CSRF tokens on every POST, trusted hosts, strict headers.

Every state change is a POST carrying ``csrf_token``, a random value kept in the signed
session cookie (``SameSite=Strict``, ``HttpOnly``). A POST without it, or with another
one, is refused with 400 and changes nothing. A POST whose ``Origin`` names another site is
refused with 403. With the default loopback bind only ``127.0.0.1``/``localhost`` Host
headers are accepted, which stops DNS-rebinding pages from talking to the console.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from flask import Flask, abort, request, session

TOKEN_FIELD = "csrf_token"
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def csrf_token() -> str:
    """This session's token (created on first use); templates put it in every form."""
    if TOKEN_FIELD not in session:
        session[TOKEN_FIELD] = secrets.token_urlsafe(32)
    return str(session[TOKEN_FIELD])


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


def protect(app: Flask, host: str) -> None:
    """Install the CSRF check, the host allow-list and the headers on ``app``."""
    app.secret_key = secrets.token_bytes(32)
    app.config.update(SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_NAME="ordertasks_console")
    if host in ("127.0.0.1", "localhost", "::1"):
        app.config["TRUSTED_HOSTS"] = LOOPBACK_HOSTS
    app.before_request(_check_post)
    app.after_request(_add_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
