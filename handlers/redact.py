"""Secrets out of text before it is stored or logged, and tokens that cannot be sent.

What reaches the failed-task log (``error``, each ``history`` entry) and the handler's log
lines is mostly exception text, and exception text quotes what the code held: a URL with
``?api_key=…`` or ``user:pass@``, a header dict with ``'Authorization': 'Bearer …'``.
``redact(text)`` replaces, wherever they appear:

- URL userinfo: ``https://user:pass@host/`` → ``https://[redacted]@host/``;
- URL query strings and fragments, with or without a scheme:
  ``/notify?api_key=SECRET`` → ``/notify?[redacted]``;
- credentials after an auth scheme: ``Bearer sk_live_…`` → ``Bearer [redacted]``;
- values of fields named like secrets: ``'Authorization': '…'``, ``"api_key": "…"``,
  ``token=…``, ``X-Api-Key: …``;
- every exact value the caller names as secret (a webhook's token), also as ``repr`` shows it
  and without surrounding white space.

It errs towards removing too much: an error loses a query string, never keeps a secret.
``unsendable(token)`` says why a token cannot go into an HTTP header (a trailing newline,
as ``echo`` adds, is the usual cause), without quoting it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

MARK = "[redacted]"
MIN_SECRET = 4          # shorter "secrets" would blank out ordinary words in every message
MAX_TEXT = 64 * 1024    # longer text is cut (with "…") before it is scanned: no record needs more
# Every pattern starts only where a run begins (no match restarts inside a run it failed on) and
# runs are taken possessively (``++``), so the scan is linear in the text: a far end chooses
# much of what is redacted, and must not be able to make it slow.
WORD = re.compile(r"[^\s'\"<>`]++")                          # a run of text up to white space or quotes
URL_START = re.compile(r"(?i)(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*+://")
SECRET_WORD = re.compile(r"(?i)authorization|api[_-]?key|apikey|access[_-]?key|secret|token|passw(?:or)?d|pwd"
                         r"|cookie|credential|signature|session[_-]?id")
QUOTED_FIELD = re.compile(r"([\"'])([\w.-]++)\1(\s*+[:=]\s*+)([\"'])((?:\\.|(?!\4).)*+)\4")
PARAMETER = re.compile(r"(?<![\w.-])([\w.-]++)=('(?:\\.|[^'\\])*+'|\"(?:\\.|[^\"\\])*+\"|[^\s'\"<>`&,;)}\]]++)")
HEADER = re.compile(r"(?i)(?<![\w-])((?:proxy-)?authorization|(?:set-)?cookie|x-api-key|api-key|x-auth-token"
                    r"|x-access-token)(:[ \t]*+)(?:(?:bearer|basic|digest|negotiate)[ \t]++)?[^\s,;]++")
AUTH_SCHEME = re.compile(r"(?i)(?<![\w-])(bearer|basic|digest|negotiate)(\s++)(?!\[redacted\])[^\s'\"<>`,;)}\]]++")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with credentials, URL query strings and userinfo, and ``secrets`` replaced by ``[redacted]``."""
    text = text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"
    for secret in secrets:
        if secret and len(secret.strip()) >= MIN_SECRET:
            for spelling in (secret, repr(secret)[1:-1], secret.strip()):   # as held, as repr'd, as sent
                text = text.replace(spelling, MARK)
    text = WORD.sub(_redact_word, text)
    text = QUOTED_FIELD.sub(_quoted_field, text)
    text = HEADER.sub(rf"\1\2{MARK}", text)
    text = PARAMETER.sub(_parameter, text)
    return AUTH_SCHEME.sub(rf"\1\2{MARK}", text)


def redact_url(url: str) -> str:
    """``url`` without its userinfo, query and fragment: what a message may show of a target."""
    return WORD.sub(_redact_word, url)


def _redact_word(match: re.Match[str]) -> str:
    """One run of text: a URL loses its userinfo, query and fragment; a path (``/n?key=…``) its query."""
    word = match.group(0)
    scheme = URL_START.search(word)
    if scheme:
        return word[:scheme.start()] + _without_credentials(word[scheme.start():], scheme.end() - scheme.start())
    slash = word.find("/")
    cut = _query_start(word, slash + 1) if slash >= 0 else -1
    return word if cut < 0 or cut == len(word) - 1 else f"{word[:cut]}?{MARK}"


def _without_credentials(url: str, authority: int) -> str:
    """``url`` (its scheme ends at ``authority``) without userinfo, query or fragment."""
    cut = _query_start(url, authority)
    head, tail = (url, "") if cut < 0 else (url[:cut], url[cut:])
    # The last "@" before the query ends any userinfo; a raw "/" in a password makes urlsplit
    # see part of it as a path, so everything up to that "@" goes, host included if need be.
    at = head.rfind("@", authority)
    if at >= 0:
        head = f"{head[:authority]}{MARK}{head[at:]}"
    return f"{head}?{MARK}" if tail else head


def _query_start(text: str, start: int) -> int:
    """Index of the first ``?`` or ``#`` at or after ``start``, or -1."""
    found = [i for i in (text.find("?", start), text.find("#", start)) if i >= 0]
    return min(found, default=-1)


def _quoted_field(match: re.Match[str]) -> str:
    """``'name': 'value'`` / ``"name": "value"`` with the value redacted when the name is a secret's."""
    if not SECRET_WORD.search(match.group(2)):
        return match.group(0)
    quote, value_quote = match.group(1), match.group(4)
    return f"{quote}{match.group(2)}{quote}{match.group(3)}{value_quote}{MARK}{value_quote}"


def _parameter(match: re.Match[str]) -> str:
    """``name=value`` with the value redacted when the name is a secret's."""
    if not SECRET_WORD.search(match.group(1)) or match.group(2) == MARK:
        return match.group(0)
    return f"{match.group(1)}={MARK}"


def unsendable(token: str) -> str | None:
    """Why ``token`` cannot be sent as ``Authorization: Bearer <token>``, or ``None`` when it can.

    The reason never quotes the token.
    """
    if token != token.rstrip("\r\n"):
        return "ends with a line break"
    if any(unicodedata.category(c) == "Cc" for c in token):
        return "holds a control character"
    if token != token.strip():
        return "starts or ends with white space"
    return None
