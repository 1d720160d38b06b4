"""Replies as real servers send them are read, not retried: parts, null content, refusals, usage."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from service.errors import ModelRefused, UpstreamFailed
from service.llm.base import ChatReply, ChatRequest, Usage
from service.llm.openai_compat import OpenAICompatibleBackend
from service.llm.retry import RetryPolicy
from standins.unruly import Scripted, UnrulyUpstream, completion

FAST_RETRY = RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_max=0.02)
REQUEST = ChatRequest(messages=[{"role": "user", "content": "Summarize."}], max_tokens=64)


@pytest.fixture(scope="module")
def server() -> Iterator[UnrulyUpstream]:
    with UnrulyUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(server: UnrulyUpstream) -> UnrulyUpstream:
    server.reset()
    return server


def complete(upstream: UnrulyUpstream) -> ChatReply:
    client = OpenAICompatibleBackend(
        base_url=upstream.base_url, api_key=None, model="m", retry=FAST_RETRY, timeout=5.0
    )

    async def go() -> ChatReply:
        try:
            return await client.complete(REQUEST)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_content_parts_are_joined_and_reasoning_parts_left_out(upstream: UnrulyUpstream) -> None:
    parts = [
        {"type": "reasoning", "text": "let me think about the secret plan"},
        {"type": "text", "text": '{"summary": '},
        {"type": "output_text", "text": '"short"}'},
    ]
    upstream.script(Scripted(body=completion(parts)))

    reply = complete(upstream)

    assert reply.content == '{"summary": "short"}'
    assert reply.attempts == 1


def test_reasoning_never_reaches_the_content_but_its_tokens_count(
    upstream: UnrulyUpstream,
) -> None:
    usage = {
        "prompt_tokens": 20,
        "completion_tokens": 130,
        "completion_tokens_details": {"reasoning_tokens": 100},
    }
    body = completion('{"summary": "done"}', usage=usage, reasoning_content="I pondered <think>")
    upstream.script(Scripted(body=body))

    reply = complete(upstream)

    assert reply.content == '{"summary": "done"}'
    assert reply.usage == Usage(prompt_tokens=20, completion_tokens=130)


def test_reasoning_reported_apart_from_completion_tokens_is_added(
    upstream: UnrulyUpstream,
) -> None:
    usage = {
        "prompt_tokens": 5,
        "completion_tokens": 8,
        "completion_tokens_details": {"reasoning_tokens": 40},
    }
    upstream.script(Scripted(body=completion("x", usage=usage)))

    assert complete(upstream).usage == Usage(prompt_tokens=5, completion_tokens=48)


def test_null_content_cut_off_at_the_budget_is_an_empty_reply_after_one_call(
    upstream: UnrulyUpstream,
) -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 64}
    upstream.script(
        Scripted(body=completion(None, finish_reason="length", usage=usage, reasoning="long"))
    )

    reply = complete(upstream)

    assert (reply.content, reply.finish_reason, reply.attempts) == ("", "length", 1)
    assert reply.usage == Usage(prompt_tokens=12, completion_tokens=64)
    assert len(upstream.calls) == 1


def test_a_refusal_raises_model_refused_once_with_its_usage(upstream: UnrulyUpstream) -> None:
    usage = {"prompt_tokens": 9, "completion_tokens": 3}
    upstream.script(Scripted(body=completion(None, refusal="I can't help with that.", usage=usage)))

    with pytest.raises(ModelRefused) as caught:
        complete(upstream)

    assert caught.value.code == "model_refused"
    assert "I can't help with that." in caught.value.message
    assert (caught.value.prompt_tokens, caught.value.completion_tokens) == (9, 3)
    assert len(upstream.calls) == 1


def test_usage_of_every_billed_call_is_totalled_across_retries(upstream: UnrulyUpstream) -> None:
    # A 200 without choices is retried, but the server billed it and said so.
    billed_but_broken = Scripted(body={"usage": {"prompt_tokens": 7, "completion_tokens": 2}})
    overloaded = Scripted(status=503, body={"error": {"message": "busy"}})
    upstream.script(billed_but_broken, overloaded, Scripted(body=completion("fine")))

    reply = complete(upstream)

    assert reply.content == "fine"
    assert reply.attempts == 3
    assert reply.usage == Usage(prompt_tokens=17, completion_tokens=7)


def test_usage_of_billed_calls_is_on_the_error_when_every_attempt_fails(
    upstream: UnrulyUpstream,
) -> None:
    broken = Scripted(body={"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 1}})
    upstream.script(*[broken] * 4)

    with pytest.raises(UpstreamFailed, match="not a chat completion") as caught:
        complete(upstream)

    assert (caught.value.prompt_tokens, caught.value.completion_tokens) == (16, 4)
