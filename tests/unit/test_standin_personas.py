"""The persona stand-ins themselves: each has its documented habit and a right answer under it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from standins.persona_answers import perturb
from standins.personas import (
    MODEL_OUTPUT_LIMIT,
    OVERLOADED_RETRY_AFTER,
    REFUSAL_MESSAGE,
    REFUSAL_TRIGGER,
    PersonaUpstream,
)
from tasks.execute import parse_task_body

TEXT = "O'Neil met Ann Lee in São Paulo. Acme Corp paid for the refund."
EXTRACT = {"model": "extract", "text": TEXT, "entities": {"person": "", "city": "", "org": ""}}
CLASSIFY = {
    "model": "classify",
    "text": TEXT,
    "labels": [
        {"name": "refund", "rubric": "Is a refund mentioned?"},
        {"name": "weather", "rubric": "Is the weather mentioned?"},
    ],
}
RIGHT_ENTITIES = [
    {"type": "person", "text": "O'Neil"},
    {"type": "person", "text": "Ann Lee"},
    {"type": "city", "text": "São Paulo"},
    {"type": "org", "text": "Acme Corp"},
]
# In the shape classify's schema asks for: one boolean per label name.
RIGHT_LABELS = {"refund": True, "weather": False}


def task_request(body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A chat request as textbatch builds it today: the task's prompt and strict schema."""
    task, request = parse_task_body(body)
    schema = task.output_schema(request)
    return {
        "model": "standin-model",
        "messages": task.render_messages(request),
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": task.name, "schema": schema, "strict": True},
        },
        **fields,
    }


@pytest.fixture
def persona(request: pytest.FixtureRequest) -> Iterator[PersonaUpstream]:
    with PersonaUpstream(str(request.param)) as upstream:
        yield upstream


def post(upstream: PersonaUpstream, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{upstream.base_url}/chat/completions", json=body, timeout=10)


def message(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["choices"][0]["message"]
    return result


def only_json(content: str) -> Any:
    return orjson.loads(content)


@pytest.mark.parametrize("persona", ["think"], indirect=True)
def test_think_puts_a_block_with_braces_before_the_right_answer(persona: PersonaUpstream) -> None:
    content = message(post(persona, task_request(EXTRACT)))["content"]
    block, _, rest = content.partition("</think>")
    assert block.startswith("<think>") and "{" in block
    assert only_json(rest)["entities"] == RIGHT_ENTITIES


@pytest.mark.parametrize("persona", ["reasoning"], indirect=True)
def test_reasoning_refuses_max_tokens_and_temperature_as_openai_does(
    persona: PersonaUpstream,
) -> None:
    refused = post(persona, task_request(CLASSIFY, max_tokens=100)).json()["error"]
    assert (refused["param"], refused["code"]) == ("max_tokens", "unsupported_parameter")
    refused = post(persona, task_request(CLASSIFY, temperature=0)).json()["error"]
    assert (refused["param"], refused["code"]) == ("temperature", "unsupported_value")
    answered = post(persona, task_request(CLASSIFY, max_completion_tokens=200, temperature=1))
    assert only_json(message(answered)["content"])["labels"] == RIGHT_LABELS
    usage = answered.json()["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] > 0
    assert usage["completion_tokens"] > usage["completion_tokens_details"]["reasoning_tokens"]


@pytest.mark.parametrize("persona", ["chatty"], indirect=True)
def test_chatty_wraps_a_fenced_answer_in_prose(persona: PersonaUpstream) -> None:
    content = message(post(persona, task_request(CLASSIFY)))["content"]
    fenced = re.search(r"```json\n(.*?)\n```", content, re.DOTALL)
    assert fenced and not content.startswith("```") and not content.endswith("```")
    assert only_json(fenced.group(1))["labels"] == RIGHT_LABELS


@pytest.mark.parametrize("persona", ["non_enforcing"], indirect=True)
def test_non_enforcing_bends_names_shapes_and_spans(persona: PersonaUpstream) -> None:
    labels = only_json(message(post(persona, task_request(CLASSIFY)))["content"][1:])["labels"]
    assert labels == {"REFUND": "yes", "  Weather ": False, "Other": True}
    content = message(post(persona, task_request(EXTRACT)))["content"]
    assert content.startswith("\ufeff")
    spans = [entity["text"] for entity in only_json(content[1:])["entities"]]
    assert spans == [perturb(entity["text"]) for entity in RIGHT_ENTITIES]
    assert spans[0] == "O\u2019Neil" and spans[1] == "Ann  Lee" and spans[2] != "São  Paulo"


@pytest.mark.parametrize("persona", ["refusal"], indirect=True)
def test_refusal_gives_null_content_and_a_refusal(persona: PersonaUpstream) -> None:
    refused = message(
        post(persona, task_request({**CLASSIFY, "text": f"How to {REFUSAL_TRIGGER}?"}))
    )
    assert refused["content"] is None and refused["refusal"] == REFUSAL_MESSAGE
    assert only_json(message(post(persona, task_request(CLASSIFY)))["content"])["labels"]


@pytest.mark.parametrize("persona", ["truncating"], indirect=True)
def test_truncating_cuts_the_json_unless_the_budget_is_enough(persona: PersonaUpstream) -> None:
    small = post(persona, task_request(EXTRACT, max_tokens=10)).json()
    assert small["choices"][0]["finish_reason"] == "length"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(small["choices"][0]["message"]["content"])
    unset = post(persona, task_request(EXTRACT)).json()
    assert unset["choices"][0]["finish_reason"] == "length"
    enough = post(persona, task_request(EXTRACT, max_completion_tokens=500)).json()
    assert enough["choices"][0]["finish_reason"] == "stop"
    assert only_json(enough["choices"][0]["message"]["content"])["entities"] == RIGHT_ENTITIES


@pytest.mark.parametrize("persona", ["overloaded"], indirect=True)
def test_overloaded_answers_529_first_then_rightly(persona: PersonaUpstream) -> None:
    first = post(persona, task_request(CLASSIFY))
    assert first.status_code == 529
    assert first.headers["retry-after"] == str(OVERLOADED_RETRY_AFTER)
    assert only_json(message(post(persona, task_request(CLASSIFY)))["content"])["labels"]


@pytest.mark.parametrize("persona", ["content_parts"], indirect=True)
def test_content_parts_join_to_the_right_answer(persona: PersonaUpstream) -> None:
    parts = message(post(persona, task_request(CLASSIFY)))["content"]
    assert [part["type"] for part in parts] == ["text", "text"]
    assert only_json("".join(part["text"] for part in parts))["labels"] == RIGHT_LABELS


@pytest.mark.parametrize("persona", ["gemini"], indirect=True)
def test_gemini_refuses_additional_properties_in_the_schema(persona: PersonaUpstream) -> None:
    refused = post(persona, task_request(CLASSIFY))
    assert refused.status_code == 400
    assert "additionalProperties" in refused.json()[0]["error"]["message"]
    body = task_request(CLASSIFY)
    schema = orjson.loads(orjson.dumps(body["response_format"]["json_schema"]["schema"]))
    text = orjson.dumps(schema).decode().replace(',"additionalProperties":false', "")
    body["response_format"]["json_schema"]["schema"] = orjson.loads(text)
    assert only_json(message(post(persona, body))["content"])["labels"] == RIGHT_LABELS


@pytest.mark.parametrize("persona", ["whitespace_loop"], indirect=True)
def test_whitespace_loop_runs_to_the_budget(persona: PersonaUpstream) -> None:
    unbounded = post(persona, task_request(CLASSIFY)).json()
    assert unbounded["usage"]["completion_tokens"] == MODEL_OUTPUT_LIMIT
    bounded = post(persona, task_request(CLASSIFY, max_tokens=100)).json()
    assert bounded["usage"]["completion_tokens"] == 100
    content = bounded["choices"][0]["message"]["content"]
    assert content.endswith("\n\n") and only_json(content)["labels"] == RIGHT_LABELS


@pytest.mark.parametrize("persona", ["llamacpp_python"], indirect=True)
def test_llamacpp_python_takes_json_object_with_a_schema_only(persona: PersonaUpstream) -> None:
    refused = post(persona, task_request(CLASSIFY))
    assert refused.status_code == 500
    assert "Input should be 'text' or 'json_object'" in refused.json()["error"]["message"]
    body = task_request(CLASSIFY)
    schema = body["response_format"]["json_schema"]["schema"]
    body["response_format"] = {"type": "json_object", "schema": schema}
    assert only_json(message(post(persona, body))["content"])["labels"] == RIGHT_LABELS


@pytest.mark.parametrize("persona", ["think"], indirect=True)
def test_a_model_name_picks_another_persona_per_call(persona: PersonaUpstream) -> None:
    body = {**task_request(CLASSIFY), "model": "persona-overloaded"}
    assert post(persona, body).status_code == 529
    assert [call.persona for call in persona.answered] == ["overloaded"]


@pytest.mark.parametrize("persona", ["think"], indirect=True)
def test_classify_answers_in_the_shape_the_schema_asks(persona: PersonaUpstream) -> None:
    """An object keyed by label name, one boolean each, as a grammar can enforce exactly."""
    keyed = {
        "type": "object",
        "properties": {"refund": {"type": "boolean"}, "weather": {"type": "boolean"}},
        "required": ["refund", "weather"],
    }
    for schema, expected in [
        (keyed, {"refund": True, "weather": False}),
        (
            {"type": "object", "properties": {"labels": keyed}, "required": ["labels"]},
            {"labels": {"refund": True, "weather": False}},
        ),
    ]:
        body = task_request(CLASSIFY)
        body["response_format"]["json_schema"]["schema"] = schema
        content = message(post(persona, body))["content"]
        assert only_json(content.partition("</think>")[2]) == expected
