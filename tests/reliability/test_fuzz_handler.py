"""Case 4a: hypothesis-generated task bodies and headers against the handler over HTTP.

Whatever arrives with a valid token: never a 5xx other than a documented 503 retry, never a
crash, and every rejected delivery leaves a failed-task record under a safe id. A few
hundred examples here; ``make soak`` runs 10 000.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordertasks.handlers.config import load_catalog
from ordertasks.handlers.contract import KIND_NAME, parse_envelope
from ordertasks.handlers.errors import PermanentError
from tests.reliability.handler_rig import Rig, RigFactory, make_store, task_body

KINDS = tuple(load_catalog().kinds)

SAFE_FAILED_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}:" + KIND_NAME.pattern.lstrip("^"))
CI_EXAMPLES, SOAK_EXAMPLES = 300, 10_000

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=15,
)
order_ids = st.one_of(st.text(max_size=80), st.sampled_from(["../../etc/passwd", "a/b", "__x__", "x" * 1024,
                                                             "ordé", "ord_ok_1", "", " ", "ord\x00"]))


def _mutated(kind: str, field: str, value: Any) -> bytes:
    body = json.loads(task_body(kind, "ord_fuzz_base"))
    body[field] = value
    return json.dumps(body).encode()


envelope_fields = st.sampled_from(["kind", "v", "order_id", "data", "placed_at", "items", "customer", "totals",
                                   "shipping_address", "currency", "total"])
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda k, o, d: json.dumps({"kind": k, "v": 1, "order_id": o, "data": d}).encode(),
              st.sampled_from(KINDS) | st.text(max_size=20), order_ids, json_values),
    st.builds(_mutated, st.sampled_from(KINDS), envelope_fields, json_values | order_ids),
)
# What an HTTP client can send at all: latin-1, no control characters, no edge whitespace.
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
                      max_size=40).map(str.strip)
headers = st.fixed_dictionaries({}, optional={
    "X-CloudTasks-TaskRetryCount": header_text | st.integers(-10, 10**30).map(str),
    "X-CloudTasks-TaskExecutionCount": header_text,
    "X-CloudTasks-QueueName": header_text | st.sampled_from(["ordertasks-email", "ordertasks-warehouse"]),
    "X-CloudTasks-TaskETA": header_text | st.floats().map(str),
    "X-Cloud-Trace-Context": header_text,
    "Content-Type": header_text,
})


@pytest.fixture(scope="module")
def fuzz_rig(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Rig]:
    """One handler (SQLite) for every example: a failed record must appear for each rejection."""
    tmp: Path = tmp_path_factory.mktemp("fuzz-handler")
    factory = RigFactory(tmp)
    rig = factory(make_store("sqlite", tmp, request))
    rig.place("ord_fuzz_base", "ord_ok_1")
    yield rig
    factory.close()


def _parses(body: bytes) -> bool:
    try:
        parse_envelope(body)
    except PermanentError:
        return False
    return True


def check_delivery(rig: Rig, body: bytes, sent: dict[str, str]) -> None:
    """One fuzzed delivery and what must hold for it."""
    task_name = f"fuzz-{uuid.uuid4().hex}"
    resp = rig.deliver(body, headers={**sent, "X-CloudTasks-TaskName": task_name})
    assert resp.status_code in (200, 503), (resp.status_code, resp.text[:300])
    answer = resp.json()
    if resp.status_code == 503:
        # A retry is only for a valid task whose dependency failed: bad input is never retried.
        assert answer["outcome"] == "retry" and _parses(body), answer
        return
    if answer["outcome"] == "dead":
        failed_id = f"{answer['order_id']}:{answer['kind']}"
        assert SAFE_FAILED_ID.match(failed_id), failed_id
        record = rig.store.failed.get_failed(failed_id)
        assert record is not None and record.history[-1]["task_name"] == task_name, failed_id


@settings(max_examples=CI_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, sent=headers)
def test_fuzzed_deliveries_never_5xx_and_rejections_are_logged(fuzz_rig: Rig, body: bytes,
                                                              sent: dict[str, str]) -> None:
    check_delivery(fuzz_rig, body, sent)


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
@settings(max_examples=SOAK_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, sent=headers)
def test_soak_fuzzed_deliveries(fuzz_rig: Rig, body: bytes, sent: dict[str, str]) -> None:
    check_delivery(fuzz_rig, body, sent)
