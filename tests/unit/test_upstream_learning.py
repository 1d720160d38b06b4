"""A server's refusal of a parameter we chose is learned from, at once, and remembered."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from service.errors import UpstreamFailed, UpstreamRejected
from service.llm.base import ChatReply, ChatRequest
from service.llm.openai_compat import OpenAICompatibleBackend
from service.llm.profiles import PROFILES
from service.llm.request_shape import Adaptations
from service.llm.retry import RetryPolicy
from standins.unruly import Scripted, UnrulyUpstream, completion

FAST_RETRY = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.02)
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "labels": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1}
    },
    "required": ["labels"],
    "additionalProperties": False,
}
REQUEST = ChatRequest(
    messages=[{"role": "user", "content": "Label this."}],
    response_schema=SCHEMA,
    schema_name="classify",
    temperature=0.0,
    seed=11,
    max_tokens=300,
)


@pytest.fixture(scope="module")
def server() -> Iterator[UnrulyUpstream]:
    with UnrulyUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(server: UnrulyUpstream) -> UnrulyUpstream:
    server.reset()
    return server


def backend(upstream: UnrulyUpstream, profile: str = "generic") -> OpenAICompatibleBackend:
    return OpenAICompatibleBackend(
        base_url=upstream.base_url,
        api_key=None,
        model="m",
        retry=FAST_RETRY,
        timeout=5.0,
        profile=PROFILES[profile],
    )


def complete_all(client: OpenAICompatibleBackend, count: int = 1) -> list[ChatReply]:
    async def go() -> list[ChatReply]:
        try:
            return [await client.complete(REQUEST) for _ in range(count)]
        finally:
            await client.aclose()

    return asyncio.run(go())


def openai_error(message: str, param: str | None, code: str) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }


def sent(upstream: UnrulyUpstream) -> list[dict[str, Any]]:
    return [call["body"] for call in upstream.calls]


def test_openai_reasoning_refusals_are_learned_and_remembered(
    upstream: UnrulyUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.script(
        Scripted(
            status=400,
            body=openai_error(
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "max_tokens",
                "unsupported_parameter",
            ),
        ),
        Scripted(
            status=400,
            body=openai_error(
                "Unsupported value: 'temperature' does not support 0.0 with this model. "
                "Only the default (1) value is supported.",
                "temperature",
                "unsupported_value",
            ),
        ),
    )

    with caplog.at_level(logging.WARNING, logger="service.llm"):
        first, second = complete_all(backend(upstream), 2)

    assert first.content == second.content == "ok"
    assert first.attempts == 3, "two re-sends, neither counted against the retries"
    assert second.attempts == 1, "the second call is sent adapted at once"
    bodies = sent(upstream)
    assert "max_tokens" in bodies[0] and bodies[0]["temperature"] == 0.0
    assert bodies[1]["max_completion_tokens"] == 300 and "max_tokens" not in bodies[1]
    for body in bodies[2:]:
        assert body["max_completion_tokens"] == 300
        assert "max_tokens" not in body and "temperature" not in body
        assert body["seed"] == 11
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, "each adaptation is logged once"
    assert "max_completion_tokens" in warnings[0] and "'temperature' out" in warnings[1]


def test_llama_cpp_python_500_on_json_schema_switches_to_json_object(
    upstream: UnrulyUpstream,
) -> None:
    upstream.script(
        Scripted(
            status=500,
            body={
                "detail": [
                    {
                        "type": "literal_error",
                        "loc": ["body", "response_format", "type"],
                        "msg": "Input should be 'text' or 'json_object'",
                        "input": "json_schema",
                    }
                ]
            },
        )
    )

    client = backend(upstream, "llamacpp")
    (reply,) = complete_all(client)

    assert client.adaptations.as_dict() == {"response_format": "json_object_schema"}
    assert reply.attempts == 2, "the 500 was not retried as a fault, it was learned from"
    assert sent(upstream)[1]["response_format"] == {"type": "json_object", "schema": SCHEMA}


def test_litellm_unsupported_params_drops_the_seed(upstream: UnrulyUpstream) -> None:
    message = (
        "litellm.UnsupportedParamsError: openai does not support parameters: ['seed'], "
        "for model=o1. To drop these, set `litellm.drop_params=True`"
    )
    upstream.script(Scripted(status=400, body={"error": {"message": message, "code": "400"}}))

    (reply,) = complete_all(backend(upstream, "litellm"))

    assert reply.attempts == 2
    assert "seed" not in sent(upstream)[1]
    assert sent(upstream)[1]["temperature"] == 0.0


def test_gemini_unknown_schema_keyword_is_left_out(upstream: UnrulyUpstream) -> None:
    gemini = [
        {
            "error": {
                "code": 400,
                "message": 'Invalid JSON payload received. Unknown name "additionalProperties" '
                "at 'generation_config.response_schema': Cannot find field.",
                "status": "INVALID_ARGUMENT",
            }
        }
    ]
    upstream.script(Scripted(status=400, body=gemini))

    (reply,) = complete_all(backend(upstream))

    schema = sent(upstream)[1]["response_format"]["json_schema"]["schema"]
    assert reply.attempts == 2
    assert "additionalProperties" not in schema
    assert schema["properties"]["labels"]["minItems"] == 1


def test_openai_min_items_not_permitted_is_left_out(upstream: UnrulyUpstream) -> None:
    message = (
        "Invalid schema for response_format 'classify': In context=('properties', 'labels'), "
        "'minItems' is not permitted."
    )
    upstream.script(
        Scripted(status=400, body=openai_error(message, "response_format", "invalid_value")),
        Scripted(
            status=400,
            body=openai_error(
                message.replace("minItems", "maxItems"), "response_format", "invalid_value"
            ),
        ),
    )

    (reply,) = complete_all(backend(upstream, "openai"))

    labels = sent(upstream)[2]["response_format"]["json_schema"]["schema"]["properties"]["labels"]
    assert reply.attempts == 3
    assert "minItems" not in labels and "maxItems" not in labels
    assert sent(upstream)[2]["response_format"]["json_schema"]["strict"] is True


def test_a_stated_output_limit_lowers_the_cap(upstream: UnrulyUpstream) -> None:
    message = "max_tokens is too large: 300. This model supports at most 128 completion tokens."
    upstream.script(Scripted(status=400, body=openai_error(message, "max_tokens", "invalid_value")))
    client = backend(upstream)

    (reply,) = complete_all(client)

    assert reply.attempts == 2
    assert sent(upstream)[1]["max_tokens"] == 128
    assert client.output_token_cap == 128


def test_a_response_format_refused_in_every_form_is_finally_not_sent(
    upstream: UnrulyUpstream,
) -> None:
    refusal = Scripted(
        status=400,
        body={"error": {"message": "response_format is not supported", "code": 400}},
    )
    upstream.script(refusal, refusal, refusal, refusal)

    (reply,) = complete_all(backend(upstream))

    formats = [body.get("response_format") for body in sent(upstream)]
    assert reply.attempts == 5
    assert formats[1] == {
        "type": "json_schema",
        "json_schema": {"name": "classify", "schema": SCHEMA},
    }
    assert formats[2] == {"type": "json_object", "schema": SCHEMA}
    assert formats[3] == {"type": "json_object"}
    assert formats[4] is None


def test_a_refusal_that_names_nothing_we_sent_is_rejected_once(upstream: UnrulyUpstream) -> None:
    message = "This model's maximum context length is 4096 tokens; the messages are too long."
    upstream.script(
        Scripted(status=400, body=openai_error(message, "messages", "context_length_exceeded"))
    )

    with pytest.raises(UpstreamRejected) as caught:
        complete_all(backend(upstream))

    assert caught.value.attempts == 1
    assert len(upstream.calls) == 1


def test_a_server_error_saying_the_request_is_invalid_is_not_retried(
    upstream: UnrulyUpstream,
) -> None:
    upstream.script(Scripted(status=500, body={"error": {"message": "Invalid request: bad chat"}}))

    with pytest.raises(UpstreamRejected) as caught:
        complete_all(backend(upstream))

    assert caught.value.upstream_status == 500
    assert len(upstream.calls) == 1


@pytest.mark.parametrize("status", [529, 520, 521, 522, 523, 524])
def test_overloaded_and_cdn_statuses_are_retried(upstream: UnrulyUpstream, status: int) -> None:
    upstream.script(
        Scripted(
            status=status, body={"error": {"message": "overloaded"}}, headers={"Retry-After": "0"}
        )
    )

    (reply,) = complete_all(backend(upstream))

    assert reply.attempts == 2
    assert reply.content == "ok"


def test_a_persistent_529_fails_as_an_upstream_error_after_every_attempt(
    upstream: UnrulyUpstream,
) -> None:
    upstream.script(*[Scripted(status=529, body={"error": {"message": "Overloaded"}})] * 3)

    with pytest.raises(UpstreamFailed) as caught:
        complete_all(backend(upstream))

    assert caught.value.upstream_status == 529
    assert caught.value.attempts == FAST_RETRY.max_attempts


def test_a_refused_budget_field_is_switched_then_dropped(upstream: UnrulyUpstream) -> None:
    def refuse(field: str) -> Scripted:
        return Scripted(
            status=400,
            body=openai_error(f"Unrecognized request argument supplied: {field}", field, "x"),
        )

    upstream.script(refuse("max_tokens"), refuse("max_completion_tokens"))
    client = backend(upstream)

    (reply,) = complete_all(client)

    assert reply.attempts == 3
    last = sent(upstream)[2]
    assert "max_tokens" not in last and "max_completion_tokens" not in last
    assert client.adaptations.as_dict() == {"no_token_field": True}
    assert upstream.calls[-1]["body"]["messages"] == REQUEST.messages
    assert completion()["choices"][0]["message"]["content"] == reply.content


def test_calls_refused_together_learn_the_adaptation_once(
    upstream: UnrulyUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    refusal = Scripted(
        status=400,
        body=openai_error(
            "Unsupported parameter: 'max_tokens' is not supported with this model.",
            "max_tokens",
            "unsupported_parameter",
        ),
        delay_seconds=0.2,
    )
    upstream.rules['"max_tokens"'] = refusal
    client = backend(upstream)

    async def go() -> list[ChatReply]:
        try:
            return await asyncio.gather(*[client.complete(REQUEST) for _ in range(4)])
        finally:
            await client.aclose()

    with caplog.at_level(logging.WARNING, logger="service.llm"):
        replies = asyncio.run(go())

    assert [reply.content for reply in replies] == ["ok"] * 4
    assert [reply.attempts for reply in replies] == [2] * 4
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    for body in sent(upstream)[4:]:
        assert body["max_completion_tokens"] == 300


def test_a_schema_keyword_named_bare_is_left_out_too(upstream: UnrulyUpstream) -> None:
    message = "Invalid argument: response schema field maxItems is not supported"
    upstream.script(Scripted(status=400, body={"error": {"message": message, "code": 400}}))

    (reply,) = complete_all(backend(upstream))

    labels = sent(upstream)[1]["response_format"]["json_schema"]["schema"]["properties"]["labels"]
    assert reply.attempts == 2
    assert "maxItems" not in labels and labels["minItems"] == 1


def test_vllm_extra_forbidden_names_the_field_inside_its_message(
    upstream: UnrulyUpstream,
) -> None:
    message = (
        "[{'type': 'extra_forbidden', 'loc': ('body', 'seed'), "
        "'msg': 'Extra inputs are not permitted', 'input': 11}]"
    )
    vllm = {"object": "error", "message": message, "type": "BadRequestError", "param": None}
    upstream.script(Scripted(status=400, body={**vllm, "code": 400}))

    (reply,) = complete_all(backend(upstream, "vllm"))

    assert reply.attempts == 2
    assert "seed" not in sent(upstream)[1]
    assert sent(upstream)[1]["max_tokens"] == 300


def test_llama_cpp_server_500_on_an_unsupported_param_is_learned_not_retried(
    upstream: UnrulyUpstream,
) -> None:
    llama = {"error": {"code": 500, "message": "Unsupported param: top_p", "type": "server_error"}}
    old_format = {
        "error": {
            "code": 500,
            "message": 'response_format type must be one of "text" or "json_object", '
            "but got: json_schema",
            "type": "server_error",
        }
    }
    upstream.script(Scripted(status=500, body=old_format), Scripted(status=500, body=llama))
    request = ChatRequest(messages=REQUEST.messages, response_schema=SCHEMA, top_p=0.9)
    client = backend(upstream, "llamacpp")

    async def go() -> ChatReply:
        try:
            return await client.complete(request)
        finally:
            await client.aclose()

    reply = asyncio.run(go())

    assert reply.attempts == 3
    assert sent(upstream)[1]["response_format"] == {"type": "json_object", "schema": SCHEMA}
    assert sent(upstream)[1]["top_p"] == 0.9
    assert "top_p" not in sent(upstream)[2]


def test_a_context_overflow_naming_the_budget_is_not_learned(upstream: UnrulyUpstream) -> None:
    message = (
        "'max_tokens' is too large: 300. This model's maximum context length is 2048 tokens "
        "and your request has 1900 input tokens (300 > 2048 - 1900)."
    )
    upstream.script(Scripted(status=400, body={"object": "error", "message": message}))
    client = backend(upstream, "vllm")

    with pytest.raises(UpstreamRejected) as caught:
        complete_all(client)

    assert "maximum context length" in caught.value.message
    assert len(upstream.calls) == 1
    assert client.adaptations == Adaptations()
