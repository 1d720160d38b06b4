"""The OpenAI-compatible backend against the stand-in upstream over real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.errors import UpstreamFailed, UpstreamRejected, UpstreamTimeout
from service.llm.base import ChatReply, ChatRequest
from service.llm.openai_compat import OpenAICompatibleBackend
from service.llm.retry import RetryPolicy, parse_retry_after
from standins.upstream import StandinUpstream

API_KEY = "sk-test-0123456789abcdef"
FAST_RETRY = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.05)

EXTRACT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "entities": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": ["person", "organization", "number"]},
                    "text": {"type": "string"},
                },
                "required": ["type", "text"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["entities"],
    "additionalProperties": False,
}
SUMMARIZE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"summary": {"type": "string"}},
    "required": ["summary"],
    "additionalProperties": False,
}
CLASSIFY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "labels": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "enum": ["billing issue", "shipping", "praise"]},
                    "match": {"type": "boolean"},
                },
                "required": ["name", "match"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["labels"],
    "additionalProperties": False,
}
TEXT = "Alice Smith paid 42 dollars to Acme. The billing page then crashed twice."


@pytest.fixture(scope="module")
def upstream() -> Iterator[StandinUpstream]:
    with StandinUpstream(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def standin(upstream: StandinUpstream) -> StandinUpstream:
    upstream.reset()
    return upstream


def make_backend(
    upstream: StandinUpstream, *, retry: RetryPolicy = FAST_RETRY, timeout: float = 5.0
) -> OpenAICompatibleBackend:
    return OpenAICompatibleBackend(
        base_url=upstream.base_url,
        api_key=API_KEY,
        model="standin-model",
        timeout=timeout,
        retry=retry,
    )


def run_complete(backend: OpenAICompatibleBackend, request: ChatRequest) -> ChatReply:
    async def go() -> ChatReply:
        try:
            return await backend.complete(request)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def chat(content: str, **options: Any) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": content}], **options)


def task_request(name: str, schema: dict[str, Any]) -> ChatRequest:
    return chat(f"Do the task.\n<text>\n{TEXT}\n</text>", response_schema=schema, schema_name=name)


def test_extract_answer_is_valid_for_its_schema(standin: StandinUpstream) -> None:
    reply = run_complete(make_backend(standin), task_request("extract", EXTRACT_SCHEMA))

    entities = orjson.loads(reply.content)["entities"]
    assert entities, "capitalized words and numbers should be extracted"
    for entity in entities:
        assert set(entity) == {"type", "text"}
        assert entity["type"] in ("person", "organization", "number")
        assert entity["text"] in TEXT
    assert reply.attempts == 1
    assert reply.model == "standin-model"
    assert reply.request_id and reply.request_id.startswith("req-")


def test_summarize_answer_is_the_first_sentence(standin: StandinUpstream) -> None:
    reply = run_complete(make_backend(standin), task_request("summarize", SUMMARIZE_SCHEMA))

    assert orjson.loads(reply.content) == {"summary": "Alice Smith paid 42 dollars to Acme."}


def test_classify_answer_has_one_label_per_enum_name(standin: StandinUpstream) -> None:
    reply = run_complete(make_backend(standin), task_request("classify", CLASSIFY_SCHEMA))

    labels = orjson.loads(reply.content)["labels"]
    assert labels == [
        {"name": "billing issue", "match": True},
        {"name": "shipping", "match": False},
        {"name": "praise", "match": False},
    ]


def test_usage_counts_words_of_prompt_and_answer(standin: StandinUpstream) -> None:
    reply = run_complete(make_backend(standin), chat("one two three"))

    assert reply.content == "echo: one two three"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (3, 4)
    assert reply.finish_reason == "stop"


def test_response_format_carries_schema_and_strict(standin: StandinUpstream) -> None:
    request = task_request("summarize", SUMMARIZE_SCHEMA)
    request = ChatRequest(
        messages=request.messages,
        response_schema=SUMMARIZE_SCHEMA,
        schema_name="summarize",
        temperature=0.0,
        seed=7,
    )
    run_complete(make_backend(standin), request)

    (call,) = standin.calls
    assert call.path == "/v1/chat/completions"
    assert call.body["model"] == "standin-model"
    assert call.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "summarize", "schema": SUMMARIZE_SCHEMA, "strict": True},
    }
    assert call.body["temperature"] == 0.0
    assert call.body["seed"] == 7
    assert "top_p" not in call.body
    assert "max_tokens" not in call.body


def test_key_is_sent_but_never_shown(standin: StandinUpstream) -> None:
    backend = make_backend(standin)
    run_complete(backend, chat("hello"))

    assert standin.authorizations == [f"Bearer {API_KEY}"]
    assert standin.calls[0].auth_ok
    assert API_KEY not in repr(backend)

    wrong = OpenAICompatibleBackend(
        base_url=standin.base_url, api_key="sk-wrong-key", model="m", retry=FAST_RETRY
    )
    with pytest.raises(UpstreamRejected) as caught:
        run_complete(wrong, chat("hello"))
    assert caught.value.upstream_status == 401
    assert "sk-wrong-key" not in str(caught.value)
    assert "sk-wrong-key" not in repr(wrong)


def test_rate_limit_waits_for_retry_after_then_succeeds(standin: StandinUpstream) -> None:
    content = "limit me [[fail:429:1]] [[retry-after:1]]"
    reply = run_complete(make_backend(standin), chat(content))

    first, second = standin.calls_matching("limit me")
    assert second.at - first.at >= 1.0
    assert reply.attempts == 2


def test_persistent_server_error_fails_after_every_attempt(standin: StandinUpstream) -> None:
    with pytest.raises(UpstreamFailed) as caught:
        run_complete(make_backend(standin), chat("always broken [[fail:500]]"))

    assert caught.value.attempts == FAST_RETRY.max_attempts
    assert caught.value.upstream_status == 500
    assert len(standin.calls_matching("always broken")) == FAST_RETRY.max_attempts


def test_client_error_is_rejected_without_retry(standin: StandinUpstream) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        run_complete(make_backend(standin), chat("bad request [[fail:400]]"))

    assert caught.value.attempts == 1
    assert caught.value.upstream_status == 400
    assert "400" in str(caught.value)
    assert "stand-in fault" in str(caught.value)
    assert len(standin.calls_matching("bad request")) == 1


def test_read_timeout_becomes_upstream_timeout(standin: StandinUpstream) -> None:
    backend = make_backend(standin, timeout=0.5, retry=RetryPolicy(2, backoff_base=0.01))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as caught:
        run_complete(backend, chat("hang [[timeout]]"))

    assert caught.value.attempts == 2
    assert time.monotonic() - started < 5
    assert len(standin.calls_matching("hang")) == 2


def test_connection_reset_once_is_retried(standin: StandinUpstream) -> None:
    reply = run_complete(make_backend(standin), chat("flaky link [[reset:1]]"))

    assert reply.attempts == 2
    assert reply.content.startswith("echo: flaky link")


def test_body_that_is_not_json_once_is_retried(standin: StandinUpstream) -> None:
    reply = run_complete(make_backend(standin), chat("garbled [[badjson:1]]"))

    assert reply.attempts == 2
    assert len(standin.calls_matching("garbled")) == 2


def test_body_that_is_never_json_fails_with_a_clear_message(standin: StandinUpstream) -> None:
    with pytest.raises(UpstreamFailed, match="not a chat completion") as caught:
        run_complete(make_backend(standin), chat("garbled forever [[badjson:99]]"))

    assert caught.value.attempts == FAST_RETRY.max_attempts


def test_forward_returns_the_upstream_body(standin: StandinUpstream) -> None:
    backend = make_backend(standin)
    body = {"model": "embedder", "input": ["first text", "second"]}

    async def go() -> tuple[int, dict[str, Any], str | None]:
        try:
            return await backend.forward("/v1/embeddings", body)
        finally:
            await backend.aclose()

    status, answer, request_id = asyncio.run(go())

    assert status == 200
    assert [item["index"] for item in answer["data"]] == [0, 1]
    assert len(answer["data"][0]["embedding"]) == 8
    assert answer["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert request_id and request_id.startswith("req-")
    (call,) = standin.calls
    assert call.path == "/v1/embeddings"
    assert call.body == body


def test_forward_hands_back_a_client_error(standin: StandinUpstream) -> None:
    backend = make_backend(standin)

    async def go() -> tuple[int, dict[str, Any], str | None]:
        try:
            return await backend.forward("/v1/completions", {"prompt": "x [[fail:404]]"})
        finally:
            await backend.aclose()

    status, answer, _ = asyncio.run(go())

    assert status == 404
    assert answer["error"]["code"] == "standin_fault"
    assert len(standin.calls) == 1


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    retry_after=st.none() | st.floats(min_value=-10, max_value=1e6, allow_nan=False),
    base=st.floats(min_value=0, max_value=10),
    cap=st.floats(min_value=0, max_value=100),
)
def test_delay_stays_within_its_bounds(
    attempt: int, retry_after: float | None, base: float, cap: float
) -> None:
    policy = RetryPolicy(backoff_base=base, backoff_max=cap, retry_after_max=60.0)

    wait = policy.delay(attempt, retry_after)

    floor = 0.0 if retry_after is None else min(max(retry_after, 0.0), 60.0)
    assert floor <= wait <= max(cap, floor)


def test_parse_retry_after_reads_seconds_and_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    in_ten = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    assert parse_retry_after(in_ten) == pytest.approx(10, abs=1.5)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
