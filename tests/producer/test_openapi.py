"""``/openapi.json`` describes every route and status, and no input reaches a 500.

Schemathesis will fuzz the document later; here hypothesis throws arbitrary JSON and
near-valid orders at the app and every answer must be a documented status with the
JSON error shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordertasks.producer.checkout import create_app
from ordertasks.producer.openapi import openapi_document
from tests.producer.conftest import Stack, build_stack, order_body, Emulator

DOC = openapi_document()


def test_document_is_openapi_3_1_with_resolvable_refs() -> None:
    assert DOC["openapi"] == "3.1.0"
    text = json.dumps(DOC)
    schemas = DOC["components"]["schemas"]
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}:
        assert ref in schemas, ref


def test_every_route_is_documented(offline_stack: Stack) -> None:
    routes = {(rule.rule.replace("<order_id>", "{order_id}"), method.lower())
              for rule in offline_stack.app.url_map.iter_rules() if rule.endpoint != "static"
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, ops in DOC["paths"].items() for method in ops}
    assert routes == documented


def test_served_document_matches(offline_stack: Stack) -> None:
    assert offline_stack.client.get("/openapi.json").get_json() == json.loads(json.dumps(DOC))


def test_checkout_documents_each_status_it_can_answer() -> None:
    statuses = set(DOC["paths"]["/api/checkout"]["post"]["responses"])
    assert statuses == {"201", "202", "400", "402", "409", "413", "415", "422", "503"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _mutations() -> st.SearchStrategy[dict[str, Any]]:
    """A valid order with one top-level or nested value replaced by arbitrary JSON."""
    paths = [("customer",), ("customer", "email"), ("customer", "name"), ("items",), ("items", 0),
             ("items", 0, "quantity"), ("items", 0, "unit_price"), ("items", 0, "sku"), ("currency",),
             ("shipping_address", "country"), ("payment_token",), ("order_id",), ("shipping_address",)]

    def apply(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
        body = order_body()
        target: Any = body
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        return body

    return st.builds(apply, st.sampled_from(paths), json_values)


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One app for all examples; Cloud Tasks unreachable (202s are fine, 500s are not)."""
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    stack = build_stack(tmp, Emulator(tmp), tasks={"enqueue_timeout_seconds": 0.5})
    yield stack
    stack.enqueuer.close()


def _documented(status: int) -> bool:
    return str(status) in DOC["paths"]["/api/checkout"]["post"]["responses"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values | _mutations())
def test_no_input_gets_a_500_or_an_undocumented_status(fuzz_stack: Stack, body: Any) -> None:
    resp = fuzz_stack.client.post("/api/checkout", json=body)
    assert _documented(resp.status_code), (resp.status_code, resp.get_data(as_text=True))
    assert resp.mimetype == "application/json"
    if resp.status_code >= 400:
        assert set(resp.get_json()["error"]) == {"code", "message", "fields"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order_id=st.text(max_size=80))
def test_any_order_id_path_is_404_or_200(fuzz_stack: Stack, order_id: str) -> None:
    resp = fuzz_stack.client.get("/api/orders/" + order_id.replace("/", "%2F").replace("?", "%3F").replace("#", "%23"))
    assert resp.status_code in (200, 404), resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"


def test_create_app_refuses_a_catalog_kind_without_contract(tmp_path: Path) -> None:
    from dataclasses import replace

    from ordertasks.handlers.errors import ConfigurationError
    from ordertasks.infra.config import KindConfig

    stack = build_stack(tmp_path, Emulator(tmp_path))
    catalog = stack.enqueuer.catalog
    stack.enqueuer.catalog = replace(catalog, kinds={**catalog.kinds, "send_sms": KindConfig("send_sms", "ordertasks-email", 0)})
    with pytest.raises(ConfigurationError, match="send_sms"):
        create_app(stack.settings, store=stack.store, enqueuer=stack.enqueuer, gateway=stack.gateway)
    stack.enqueuer.close()


def test_the_documented_states_are_every_state_the_api_returns() -> None:
    """A cancelled order and its cancelled tasks are answers the document must allow."""
    from ordertasks.handlers.ports import OrderStatus, TaskState
    from ordertasks.producer.openapi import ORDER_VIEW_SCHEMA, TASK_SCHEMA

    assert set(TASK_SCHEMA["properties"]["state"]["enum"]) == {s.value for s in TaskState}
    assert {s.value for s in OrderStatus} | {"awaiting_payment"} == set(ORDER_VIEW_SCHEMA["properties"]["status"]["enum"])
    assert "cancelled" in TASK_SCHEMA["properties"]["state"]["enum"]
