"""Case 4b: the checkout API fuzzed by schemathesis from its own ``/openapi.json``.

Every operation, positive and negative examples: only documented status codes, the
documented content type and response schema, and never a 5xx other than a documented 503.
Cloud Tasks is unreachable here (202s are fine), so the fuzz also walks the pending-outbox
path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks
from schemathesis.specs.openapi import checks as openapi_checks

from ordertasks.producer.checkout import create_app
from tests.producer.conftest import Emulator, build_stack

EXAMPLES = 100
CHECKS = [checks.not_a_server_error, openapi_checks.status_code_conformance,
          openapi_checks.content_type_conformance, openapi_checks.response_schema_conformance]


@pytest.fixture(scope="module")
def checkout_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The checkout app (SQLite, Cloud Tasks unreachable) as a schemathesis schema."""
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    stack = build_stack(tmp, Emulator(tmp), tasks={"enqueue_timeout_seconds": 0.5})
    app = create_app(stack.settings, store=stack.store, enqueuer=stack.enqueuer, gateway=stack.gateway)
    api = schemathesis.openapi.from_wsgi("/openapi.json", app)
    yield api
    stack.enqueuer.close()


def _answers_as_documented(case: schemathesis.Case) -> None:
    response = case.call()
    if response.status_code == 503 and "503" in case.operation.definition.raw["responses"]:
        return  # documented: the store or Cloud Tasks is unavailable, retry later
    case.validate_response(response, checks=CHECKS)


# schemathesis' own pytest plugin (``from_fixture``) does not run under pytest 9, so each
# operation's hypothesis strategy is driven here directly.
CONSTRAINED = ["POST /api/checkout", "POST /internal/reconcile"]
OTHERS = ["GET /api/orders/{order_id}", "GET /healthz", "GET /openapi.json", "POST /internal/sweep"]
# Invalid inputs exist only where the schema constrains some (the order id path is any string).
CASES = ([(label, GenerationMode.POSITIVE) for label in CONSTRAINED + OTHERS]
         + [(label, GenerationMode.NEGATIVE) for label in CONSTRAINED])


@pytest.mark.parametrize("label, mode", CASES, ids=[f"{m.value}-{label}" for label, m in CASES])
def test_checkout_api_answers_only_what_it_documents(checkout_api: Any, label: str, mode: GenerationMode) -> None:
    method, path = label.split(" ")
    operation = checkout_api[path][method]

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: schemathesis.Case) -> None:
        _answers_as_documented(case)

    fuzz()
