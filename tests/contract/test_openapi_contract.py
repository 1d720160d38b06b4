"""The service's own OpenAPI document, fuzzed: no 5xx, and every refusal in the one error shape.

Every operation the document lists is driven with schemathesis cases, valid and
invalid ones, sent with a valid key to the real service.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.service import RunningService

ERROR_FIELDS = {"type", "code", "message", "param", "line"}

OPERATIONS = [
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/v1/batches"),
    ("GET", "/v1/batches"),
    ("GET", "/v1/batches/{batch_id}"),
    ("POST", "/v1/batches/{batch_id}/cancel"),
    ("GET", "/v1/batches/{batch_id}/output"),
    ("POST", "/v1/batches/{batch_id}/retry"),
    ("GET", "/v1/batches/{batch_id}/events"),
    ("DELETE", "/v1/batches/{batch_id}"),
    ("POST", "/v1/files"),
    ("GET", "/v1/files"),
    ("GET", "/v1/files/{file_id}"),
    ("DELETE", "/v1/files/{file_id}"),
    ("GET", "/v1/files/{file_id}/content"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/responses"),
    ("POST", "/v1/moderations"),
    ("POST", "/v1/batches/from_prompt"),
    ("POST", "/v1/prompts"),
    ("GET", "/v1/prompts"),
    ("GET", "/v1/prompts/{slug}"),
    ("DELETE", "/v1/prompts/{slug}"),
    ("POST", "/v1/prompts/{slug}/versions"),
    ("POST", "/v1/prompts/{slug}/publish"),
    ("POST", "/v1/webhooks"),
    ("GET", "/v1/webhooks"),
    ("GET", "/v1/webhooks/{webhook_id}"),
    ("DELETE", "/v1/webhooks/{webhook_id}"),
]


@pytest.fixture(scope="module")
def api_schema(llm_service: RunningService) -> Any:
    return schemathesis.openapi.from_url(f"{llm_service.url}/openapi.json")


def error_has_the_one_shape(
    ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """A 4xx or 5xx answer is ``{"error": {"type", "code", "message", "param", "line"}}``."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), content_type
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) >= ERROR_FIELDS, error
    assert all(isinstance(error[name], str) and error[name] for name in ("type", "code", "message"))
    return True


CHECKS = [
    not_a_server_error,
    error_has_the_one_shape,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_the_document_lists_every_route(api_schema: Any) -> None:
    listed = {
        (result.ok().method.upper(), result.ok().path) for result in api_schema.get_all_operations()
    }
    assert listed == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[" ".join(op) for op in OPERATIONS])
def test_operation_answers_within_its_contract(
    api_schema: Any, llm_service: RunningService, method: str, path: str
) -> None:
    operation = api_schema[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_within_contract(case: schemathesis.Case) -> None:
        case.call_and_validate(
            base_url=llm_service.url,
            headers={"x-api-key": llm_service.keys[0]},
            checks=CHECKS,
            timeout=30,
        )

    answers_within_contract()
