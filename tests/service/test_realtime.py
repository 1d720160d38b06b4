"""``POST /v1/chat/completions``: one task answered synchronously through the same task code."""

from __future__ import annotations

import orjson

from tests.support.service import RunningService

TICKET = "Hello, I was charged twice for order #4411 and would like a refund of the second charge."


def test_realtime_classify_answers_a_chat_completion(llm_service: RunningService) -> None:
    body = {
        "model": "classify",
        "text": TICKET,
        "labels": [
            {"name": "billing", "rubric": "Is the customer asking about a charge?"},
            {"name": "shipping", "rubric": "Is the customer asking where a parcel is?"},
        ],
    }
    with llm_service.client() as client:
        response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    completion = response.json()
    assert completion["object"] == "chat.completion"
    assert completion["id"].startswith("chatcmpl")
    content = orjson.loads(completion["choices"][0]["message"]["content"])
    assert [label["name"] for label in content["labels"]] == ["billing", "shipping"]
    assert completion["usage"]["total_tokens"] == (
        completion["usage"]["prompt_tokens"] + completion["usage"]["completion_tokens"]
    )


def test_realtime_bad_input_is_400_naming_the_field(llm_service: RunningService) -> None:
    with llm_service.client() as client:
        response = client.post(
            "/v1/chat/completions", json={"model": "summarize", "text": "x", "colour": 1}
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "colour"
    assert error["type"] == "invalid_request_error"


def test_realtime_upstream_failure_is_502(llm_service: RunningService) -> None:
    with llm_service.client() as client:
        response = client.post(
            "/v1/chat/completions",
            json={"model": "summarize", "text": "Down. [[fail:500]] realtime-502"},
        )
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"


def test_realtime_needs_a_key(llm_service: RunningService) -> None:
    import httpx

    response = httpx.post(
        f"{llm_service.url}/v1/chat/completions", json={"model": "summarize", "text": "x"}
    )
    assert response.status_code == 401


def test_upstream_key_never_appears_in_responses(llm_service: RunningService) -> None:
    from tests.conftest import UPSTREAM_KEY

    with llm_service.client() as client:
        failed = client.post(
            "/v1/chat/completions", json={"model": "summarize", "text": "[[fail:401]] k"}
        )
    assert UPSTREAM_KEY not in failed.text
