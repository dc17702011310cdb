"""Issue 28, F3 and F4: the one redaction function (``handlers/redact.py``), case by case.

Each case is text that really reaches a record or a log line: a requests/http.client error, a
header dict's repr, a far end's JSON answer, our own messages. What must go goes; what an
operator needs (hosts, paths, ids, the Idempotency-Key) stays.
"""

from __future__ import annotations

import time

import pytest

from ordertasks.handlers.redact import MAX_TEXT, redact, redact_url, unsendable

CASES = [
    ("POST https://wms.example/n?api_key=K1 failed", "POST https://wms.example/n?[redacted] failed"),
    ("Max retries exceeded with url: /notifications?api_key=K2 (Caused by x)",
     "Max retries exceeded with url: /notifications?[redacted] (Caused by x)"),
    ("https://ops:pa/ss@wms.example/p?x=1#frag", "https://[redacted]@wms.example/p?[redacted]"),
    ("(https://ops:pw@wms.example:8443/p).", "(https://[redacted]@wms.example:8443/p)."),
    ("{'Authorization': 'Bearer sk_live_1\\n', 'Idempotency-Key': 'A1:k'}",
     "{'Authorization': '[redacted]', 'Idempotency-Key': 'A1:k'}"),
    ("Invalid header value b'Bearer sk_live_1\\n'", "Invalid header value b'Bearer [redacted]'"),
    ('{"api_key": "K3", "id": "WH-1", "idempotency_key": "A1:notify"}',
     '{"api_key": "[redacted]", "id": "WH-1", "idempotency_key": "A1:notify"}'),
    ("Authorization: Basic dXNlcjpwYXNz\r\nHost: x", "Authorization: [redacted]\r\nHost: x"),
    ("X-Api-Key: K4", "X-Api-Key: [redacted]"),
    ("token=K5&x=1 password=K6", "token=[redacted]&x=1 password=[redacted]"),
    ("ORDERTASKS_WAREHOUSE_TOKEN='K7\\n' is bad", "ORDERTASKS_WAREHOUSE_TOKEN=[redacted] is bad"),
]
KEPT = ["the token audience is wrong: expected https://h.example/ got https://x.example/",
        "Is it done? yes", "rejected delivery: kid=abc not found", "projects/p/traces/abc123",
        "Idempotency-Key: A1001:notify_warehouse", "webhook token_env names CRM_TOKEN"]


@pytest.mark.parametrize("text, expected", CASES)
def test_credentials_queries_and_userinfo_are_redacted(text: str, expected: str) -> None:
    """Attack: error text quoting a URL's key, a password or an Authorization header is stored as is."""
    assert redact(text) == expected


@pytest.mark.parametrize("text", KEPT)
def test_what_an_operator_needs_is_kept(text: str) -> None:
    """Attack: none; redaction must not blank out the hosts, ids and words triage relies on."""
    assert redact(text) == text


def test_named_secrets_go_wherever_they_appear_also_as_repr_shows_them() -> None:
    """Attack: a far end echoes our token in prose, where no pattern would see it."""
    assert redact("you sent tok-123456 (tok-123456\\n)", ["tok-123456\n"]) == "you sent [redacted] ([redacted])"
    assert redact("the word abc", ["abc"]) == "the word abc"        # too short to be a secret worth a blank


def test_redact_url_shows_the_host_and_path_only() -> None:
    """Attack: a webhook URL in a start-up problem or a message quotes its key."""
    assert redact_url("http://ops:pw@127.0.0.1:80/n?api_key=1#x") == "http://[redacted]@127.0.0.1:80/n?[redacted]"


@pytest.mark.parametrize("hostile", ["token" * 20000, "/" * 100000 + "?", "'a'" * 30000, '"a":"' * 20000,
                                     "a.a=" * 25000, "http://" * 15000, "'" + "secret" * 15000])
def test_hostile_text_is_redacted_in_linear_time(hostile: str) -> None:
    """Attack: a far end's answer shaped to make the redaction backtrack (it ran for seconds)."""
    started = time.perf_counter()
    redacted = redact(hostile)
    assert time.perf_counter() - started < 0.5 and len(redacted) <= MAX_TEXT + len("…") + 100


@pytest.mark.parametrize("token, problem", [("t\n", "ends with a line break"), ("t\r\n", "ends with a line break"),
                                            ("t\x00k", "holds a control character"),
                                            ("t\u0085k", "holds a control character"),
                                            ("t ", "starts or ends with white space"), ("tok_live_1", None)])
def test_unsendable_says_why_without_quoting(token: str, problem: str | None) -> None:
    """Attack: a token with a trailing newline reached the Authorization header (and the error text)."""
    assert unsendable(token) == problem
