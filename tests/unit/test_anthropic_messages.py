"""OpenAI chat bodies to Anthropic Messages params and back, and the custom_ids that carry a tag."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from service.llm.native.anthropic_ids import read_wire_id, tag_mark, wire_id
from service.llm.native.anthropic_messages import (
    DEFAULT_MAX_TOKENS,
    JSON_OBJECT_INSTRUCTION,
    UntranslatableRequest,
    messages_params,
)
from service.llm.native.anthropic_replies import chat_completion, error_result
from service.llm.profiles import PROFILES
from service.llm.request_shape import Adaptations, chat_payload
from tasks.execute import first_chat_request, parse_task_body

TEXT = "Alice Smith paid 42 dollars to Acme. The billing page then crashed twice."


def task_body(body: dict[str, Any]) -> dict[str, Any]:
    """The chat body a direct call of this task line sends (generic profile)."""
    task, request = parse_task_body(body)
    return chat_payload(
        first_chat_request(task, request, 512),
        model="claude-sonnet-4-5",
        profile=PROFILES["generic"],
        adaptations=Adaptations(),
        output_token_cap=8192,
    )


def chat(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "messages": list(messages), **fields}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def test_system_messages_become_system_and_the_budget_becomes_max_tokens() -> None:
    body = chat(
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Use English."},
        user("Hi"),
        max_completion_tokens=300,
        top_p=0.9,
    )

    translated = messages_params(body)

    assert translated.params == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 300,
        "messages": [{"role": "user", "content": "Hi"}],
        "system": "Be brief.\n\nUse English.",
        "top_p": 0.9,
    }
    assert translated.answer_tool is False


def test_a_body_without_a_budget_gets_the_default_max_tokens() -> None:
    assert messages_params(chat(user("Hi"))).params["max_tokens"] == DEFAULT_MAX_TOKENS
    assert messages_params(chat(user("Hi")), default_max_tokens=77).params["max_tokens"] == 77
    assert messages_params(chat(user("Hi"), max_tokens=12)).params["max_tokens"] == 12


def test_temperature_is_clamped_and_wins_over_top_p_and_stop_becomes_stop_sequences() -> None:
    params = messages_params(chat(user("Hi"), temperature=1.7, stop="END")).params
    assert params["temperature"] == 1.0
    assert params["stop_sequences"] == ["END"]
    params = messages_params(chat(user("Hi"), temperature=0.2, top_p=0.5, stop=["a", "b"])).params
    assert params["temperature"] == 0.2
    assert "top_p" not in params
    assert params["stop_sequences"] == ["a", "b"]


@pytest.mark.parametrize(
    "line",
    [
        {"model": "extract", "text": TEXT, "entities": {"person": "", "organization": ""}},
        {"model": "summarize", "text": TEXT},
        {
            "model": "classify",
            "text": TEXT,
            "labels": [{"name": "billing issue", "rubric": "Is billing mentioned?"}],
        },
    ],
    ids=["extract", "summarize", "classify"],
)
def test_a_task_schema_becomes_one_forced_tool_whose_input_schema_it_is(
    line: dict[str, Any],
) -> None:
    body = task_body(line)
    schema = body["response_format"]["json_schema"]["schema"]

    translated = messages_params(body)

    params = translated.params
    assert translated.answer_tool is True
    assert params["tools"] == [
        {
            "name": line["model"],
            "description": "Give the answer; its input is the answer.",
            "input_schema": schema,
        }
    ]
    assert params["tool_choice"] == {"type": "tool", "name": line["model"]}
    # The prompt is sent as it is: the task's system message, then the text.
    assert params["system"] == body["messages"][0]["content"]
    assert params["messages"] == [{"role": "user", "content": body["messages"][1]["content"]}]
    assert params["max_tokens"] == 512
    assert "seed" not in params and "response_format" not in params


def test_json_object_without_a_schema_asks_for_json_in_the_system_prompt() -> None:
    translated = messages_params(chat(user("Hi"), response_format={"type": "json_object"}))
    assert translated.params["system"] == JSON_OBJECT_INSTRUCTION
    assert translated.answer_tool is False
    assert "tools" not in translated.params


def test_a_schema_name_outside_the_tool_name_alphabet_is_made_to_fit() -> None:
    spec = {"name": "my schema/v2", "schema": {"type": "object", "properties": {}}}
    body = chat(user("Hi"), response_format={"type": "json_schema", "json_schema": spec})
    assert messages_params(body).params["tool_choice"]["name"] == "my_schema_v2"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"functions": []}, "functions"),
        ({"n": 2}, "n"),
        ({"model": ""}, "model"),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"schema": {"type": "array"}},
                }
            },
            "response_format",
        ),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_what_messages_cannot_express_is_refused_naming_the_field(
    fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(UntranslatableRequest) as refused:
        messages_params(chat(user("Hi"), **fields))
    assert refused.value.param == param


def test_sampling_hints_without_a_counterpart_are_dropped() -> None:
    params = messages_params(
        chat(user("Hi"), seed=7, presence_penalty=0.5, n=1, stream=False)
    ).params
    assert set(params) == {"model", "max_tokens", "messages"}


def test_caller_tools_their_calls_and_results_are_translated() -> None:
    weather = {"type": "object", "properties": {"city": {"type": "string"}}}
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
    }
    body = chat(
        user("Weather in Oslo?"),
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        tools=[
            {
                "type": "function",
                "function": {"name": "weather", "description": "Look up", "parameters": weather},
            }
        ],
        tool_choice="required",
    )

    params = messages_params(body).params

    assert params["tools"] == [
        {"name": "weather", "input_schema": weather, "description": "Look up"}
    ]
    assert params["tool_choice"] == {"type": "any"}
    assert params["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}}
        ],
    }
    assert params["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}],
    }


def test_image_parts_become_image_blocks() -> None:
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    content = messages_params(chat(user(parts))).params["messages"][0]["content"]
    assert content == [
        {"type": "text", "text": "What is this?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def message(*blocks: dict[str, Any], stop_reason: str = "end_turn", **usage: int) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": list(blocks),
        "stop_reason": stop_reason,
        "usage": {"input_tokens": 10, "output_tokens": 5, **usage},
    }


def test_the_forced_tools_input_is_the_answer_as_json_text() -> None:
    answer = {"summary": "Alice Smith paid 42 dollars to Acme."}
    use = {"type": "tool_use", "id": "toolu_1", "name": "summarize", "input": answer}
    preamble = {"type": "text", "text": "Here is the summary."}

    body = chat_completion(message(preamble, use, stop_reason="tool_use"), answer_tool=True)

    choice = body["choices"][0]
    assert orjson.loads(choice["message"]["content"]) == answer
    assert choice["finish_reason"] == "stop"
    assert "tool_calls" not in choice["message"]
    assert body["object"] == "chat.completion"
    assert body["id"] == "msg_01" and body["model"] == "claude-sonnet-4-5"


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons_become_finish_reasons(stop_reason: str, finish_reason: str) -> None:
    text = {"type": "text", "text": "Hel"}
    choice = chat_completion(message(text, stop_reason=stop_reason), answer_tool=False)["choices"][
        0
    ]
    assert choice["finish_reason"] == finish_reason
    if stop_reason == "refusal":
        assert choice["message"]["content"] is None
        assert choice["message"]["refusal"] == "Hel"
    else:
        assert choice["message"]["content"] == "Hel"


def test_a_callers_tool_use_becomes_tool_calls() -> None:
    use = {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {"city": "Oslo"}}
    choice = chat_completion(message(use, stop_reason="tool_use"), answer_tool=False)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": "toolu_9",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
        }
    ]


def test_usage_counts_cached_input_as_openai_does() -> None:
    text = {"type": "text", "text": "ok"}
    reply = message(text, cache_read_input_tokens=100, cache_creation_input_tokens=20)
    assert chat_completion(reply, answer_tool=False)["usage"] == {
        "prompt_tokens": 130,
        "completion_tokens": 5,
        "total_tokens": 135,
        "prompt_tokens_details": {"cached_tokens": 100},
    }


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("invalid_request_error", 400),
        ("authentication_error", 401),
        ("rate_limit_error", 429),
        ("api_error", 500),
        ("overloaded_error", 529),
        ("something_new", 500),
    ],
)
def test_an_errored_results_type_gives_its_http_status(kind: str, status: int) -> None:
    error = {"type": "error", "error": {"type": kind, "message": "went wrong"}}
    assert error_result(error) == (
        status,
        {"error": {"message": "went wrong", "type": kind, "code": kind}},
        "went wrong",
    )


@given(custom_id=st.text(min_size=1, max_size=38), answer_tool=st.booleans())
def test_any_short_custom_id_round_trips_through_the_wire_id(
    custom_id: str, answer_tool: bool
) -> None:
    assume(len(custom_id.encode()) <= 38)
    wire = wire_id("batch_abc:0", custom_id, answer_tool=answer_tool)

    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", wire)
    read = read_wire_id(wire)
    assert read is not None
    assert (read.custom_id, read.answer_tool, read.mark) == (
        custom_id,
        answer_tool,
        tag_mark("batch_abc:0"),
    )


def test_plain_custom_ids_stay_readable_and_long_ones_are_refused() -> None:
    assert wire_id("t", "line-7", answer_tool=False).endswith("pline-7")
    assert len(wire_id("t", "x" * 51, answer_tool=False)) == 64
    with pytest.raises(ValueError, match="64-character"):
        wire_id("t", "x" * 52 + " ", answer_tool=False)
    assert read_wire_id("not-one-of-ours") is None
