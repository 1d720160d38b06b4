"""The Anthropic Message Batches client against the stand-in over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import orjson
import pytest

from service.errors import UpstreamRejected
from service.llm.native.anthropic import AnthropicBatchClient
from service.llm.native.base import NativeBatch, NativeRequest, NativeResult, NativeStatus
from service.llm.profiles import PROFILES
from service.llm.request_shape import Adaptations, chat_payload
from service.llm.retry import RetryPolicy
from standins.anthropic_batches import StandinAnthropicBatches
from standins.upstream import StandinUpstream
from tasks.execute import first_chat_request, parse_task_body

API_KEY = "sk-ant-test-0123456789abcdef"
TEXT = "Alice Smith paid 42 dollars to Acme. The billing page then crashed twice."
CHAT = "/v1/chat/completions"
LINES: dict[str, dict[str, Any]] = {
    "extract": {"model": "extract", "text": TEXT, "entities": {"person": "", "organization": ""}},
    "summarize": {"model": "summarize", "text": TEXT},
    "classify": {
        "model": "classify",
        "text": TEXT,
        "labels": [{"name": "billing issue", "rubric": "Is billing mentioned?"}],
    },
}
T = TypeVar("T")


@pytest.fixture
def standin() -> Iterator[StandinAnthropicBatches]:
    with StandinAnthropicBatches(api_key=API_KEY) as server:
        yield server


def task_body(line: dict[str, Any]) -> dict[str, Any]:
    """The chat body a direct call of this task line sends."""
    task, request = parse_task_body(line)
    return chat_payload(
        first_chat_request(task, request, 512),
        model="claude-sonnet-4-5",
        profile=PROFILES["generic"],
        adaptations=Adaptations(),
        output_token_cap=8192,
    )


def chat_line(custom_id: str, text: str) -> NativeRequest:
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": text}]}
    return NativeRequest(custom_id, CHAT, body)


def run(
    standin: StandinAnthropicBatches,
    scenario: Callable[[AnthropicBatchClient], Awaitable[T]],
    **options: Any,
) -> T:
    async def go() -> T:
        client = AnthropicBatchClient(
            standin.base_url,
            options.pop("api_key", API_KEY),
            retry=RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.02),
            **options,
        )
        try:
            return await scenario(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


async def until_ended(client: AnthropicBatchClient, batch_id: str) -> NativeBatch:
    for _ in range(200):
        batch = await client.retrieve(batch_id)
        if batch.status.ended:
            return batch
        await asyncio.sleep(0.02)
    raise AssertionError(f"batch {batch_id} never ended")


async def all_results(client: AnthropicBatchClient, batch_id: str) -> dict[str, NativeResult]:
    return {result.custom_id: result async for result in client.results(batch_id)}


def direct_content(body: dict[str, Any]) -> str:
    """What the OpenAI-compatible stand-in answers to the same body, called directly."""
    with StandinUpstream() as upstream:
        answer = httpx.post(f"{upstream.base_url}/chat/completions", json=body, timeout=10)
    content: str = answer.json()["choices"][0]["message"]["content"]
    return content


def test_task_lines_get_the_answers_a_direct_call_gets(standin: StandinAnthropicBatches) -> None:
    bodies = {name: task_body(line) for name, line in LINES.items()}
    requests = [NativeRequest(f"line-{name}", CHAT, body) for name, body in bodies.items()]

    async def scenario(
        client: AnthropicBatchClient,
    ) -> tuple[NativeBatch, NativeBatch, dict[str, NativeResult]]:
        created = await client.submit("batch_1:anthropic:0", requests, "24h")
        ended = await until_ended(client, created.id)
        return created, ended, await all_results(client, created.id)

    created, ended, results = run(standin, scenario)

    assert created.status is NativeStatus.RUNNING
    assert created.request_counts == {"total": 3, "completed": 0, "failed": 0}
    assert ended.id == created.id and ended.status is NativeStatus.COMPLETED
    assert ended.request_counts == {"total": 3, "completed": 3, "failed": 0}
    assert set(results) == {"line-extract", "line-summarize", "line-classify"}
    for name, body in bodies.items():
        result = results[f"line-{name}"]
        assert (result.state, result.status_code) == ("succeeded", 200)
        assert result.body is not None
        choice = result.body["choices"][0]
        assert choice["finish_reason"] == "stop"
        assert orjson.loads(choice["message"]["content"]) == orjson.loads(direct_content(body))
        assert result.body["usage"]["prompt_tokens"] > 0
    assert orjson.loads(results["line-summarize"].body["choices"][0]["message"]["content"]) == {  # type: ignore[index]
        "summary": "Alice Smith paid 42 dollars to Acme."
    }
    # What went over the wire: Messages params, the schema as a forced tool.
    sent = standin.requests_of(created.id)
    assert [entry["params"]["tool_choice"]["name"] for entry in sent] == list(LINES)


def test_every_result_type_is_read_back_after_a_cancel(standin: StandinAnthropicBatches) -> None:
    requests = [
        chat_line("ok", "Say hello"),
        chat_line("bad", "Say hello [[errored:overloaded_error]]"),
        chat_line("denied", "Say hello [[errored:invalid_request_error]]"),
        chat_line("slow", "Say hello [[pending]]"),
    ]

    async def scenario(
        client: AnthropicBatchClient,
    ) -> tuple[list[NativeBatch], dict[str, NativeResult]]:
        created = await client.submit("batch_2:anthropic:0", requests, "24h")
        running = await client.retrieve(created.id)
        cancelling = await client.cancel(created.id)
        cancelled = await until_ended(client, created.id)
        return [running, cancelling, cancelled], await all_results(client, created.id)

    (running, cancelling, cancelled), results = run(standin, scenario)

    # The pending request keeps the batch running until it is cancelled.
    assert running.status is NativeStatus.RUNNING
    assert running.request_counts == {"total": 4, "completed": 1, "failed": 2}
    assert cancelling.status is NativeStatus.CANCELLING
    assert cancelled.status is NativeStatus.CANCELLED
    assert cancelled.request_counts == {"total": 4, "completed": 1, "failed": 2}
    assert results["ok"].state == "succeeded"
    assert results["ok"].body["choices"][0]["message"]["content"] == "echo: Say hello"  # type: ignore[index]
    assert (results["bad"].state, results["bad"].status_code) == ("errored", 529)
    assert results["bad"].message == "stand-in fault: overloaded_error"
    assert results["bad"].body == {
        "error": {
            "message": "stand-in fault: overloaded_error",
            "type": "overloaded_error",
            "code": "overloaded_error",
        }
    }
    assert (results["denied"].state, results["denied"].status_code) == ("errored", 400)
    assert (results["slow"].state, results["slow"].status_code) == ("canceled", None)


def test_an_expired_batch_keeps_what_finished_and_marks_the_rest_expired(
    standin: StandinAnthropicBatches,
) -> None:
    requests = [chat_line("done", "Say hi"), chat_line("late", "Say hi [[pending]]")]

    async def scenario(client: AnthropicBatchClient) -> tuple[NativeBatch, dict[str, NativeResult]]:
        created = await client.submit("batch_3:anthropic:0", requests, "24h")
        await client.retrieve(created.id)
        standin.expire(created.id)
        return await until_ended(client, created.id), await all_results(client, created.id)

    ended, results = run(standin, scenario)

    assert ended.status is NativeStatus.EXPIRED
    assert ended.request_counts == {"total": 2, "completed": 1, "failed": 0}
    assert results["done"].state == "succeeded"
    assert results["late"].state == "expired"


def test_find_recognises_an_ended_batch_by_its_tag_and_nothing_else(
    standin: StandinAnthropicBatches,
) -> None:
    async def scenario(client: AnthropicBatchClient) -> list[str | None]:
        first = await client.submit("batch_4:anthropic:0", [chat_line("a", "one")], "24h")
        second = await client.submit("batch_4:anthropic:1", [chat_line("a", "two")], "24h")
        running = await client.submit("batch_5:anthropic:0", [chat_line("a", "[[pending]]")], "24h")
        await until_ended(client, first.id)
        await until_ended(client, second.id)
        found = [
            await client.find("batch_4:anthropic:0"),
            await client.find("batch_4:anthropic:1"),
            await client.find("batch_4:anthropic:2"),
            # Anthropic shows no results before the end: a running batch cannot be told.
            await client.find("batch_5:anthropic:0"),
        ]
        return [first.id, second.id, running.id] + [b.id if b else None for b in found]

    first, second, _running, *found = run(standin, scenario, find_max_batches=10)

    assert found == [first, second, None, None]


def test_find_pages_through_the_list_newest_first(standin: StandinAnthropicBatches) -> None:
    async def scenario(client: AnthropicBatchClient) -> tuple[str, str | None]:
        oldest = await client.submit("batch_6:anthropic:0", [chat_line("a", "old")], "24h")
        for index in range(120):
            await client.submit(f"batch_7:anthropic:{index}", [chat_line("a", "new")], "24h")
        found = await client.find("batch_6:anthropic:0")
        return oldest.id, found.id if found else None

    oldest, found = run(standin, scenario, find_max_batches=500)

    assert found == oldest
    pages = [
        call
        for call in standin.calls
        if call["path"] == "/v1/messages/batches" and call["method"] == "GET"
    ]
    assert len(pages) == 2


def test_calls_carry_the_key_and_version_headers_and_no_bearer(
    standin: StandinAnthropicBatches,
) -> None:
    async def scenario(client: AnthropicBatchClient) -> NativeBatch:
        return await client.submit("batch_8:anthropic:0", [chat_line("a", "hi")], "24h")

    run(standin, scenario)

    (call,) = standin.calls
    assert call["key_ok"] is True
    assert call["headers"]["anthropic-version"] == "2023-06-01"
    assert "authorization" not in call["headers"]


def test_a_wrong_key_is_a_rejection_that_does_not_show_the_key(
    standin: StandinAnthropicBatches,
) -> None:
    async def scenario(client: AnthropicBatchClient) -> NativeBatch:
        return await client.retrieve("msgbatch_x")

    with pytest.raises(UpstreamRejected) as rejected:
        run(standin, scenario, api_key="sk-ant-wrong-key-42")

    assert rejected.value.upstream_status == 401
    # The upstream's own words are not quoted for a refused key: they may echo it.
    assert "HTTP 401" in rejected.value.message
    assert "sk-ant-wrong-key-42" not in rejected.value.message


def test_results_on_another_host_are_not_fetched(standin: StandinAnthropicBatches) -> None:
    standin.results_origin = "http://127.0.0.2:9"

    async def scenario(client: AnthropicBatchClient) -> dict[str, NativeResult]:
        created = await client.submit("batch_9:anthropic:0", [chat_line("a", "hi")], "24h")
        await until_ended(client, created.id)
        return await all_results(client, created.id)

    with pytest.raises(UpstreamRejected, match="another host"):
        run(standin, scenario)
    assert not [call for call in standin.calls if call["path"].endswith("/results")]


def test_results_of_a_running_batch_are_refused(standin: StandinAnthropicBatches) -> None:
    async def scenario(client: AnthropicBatchClient) -> dict[str, NativeResult]:
        created = await client.submit(
            "batch_10:anthropic:0", [chat_line("a", "[[pending]]")], "24h"
        )
        return await all_results(client, created.id)

    with pytest.raises(UpstreamRejected, match="has not ended"):
        run(standin, scenario)


@pytest.mark.parametrize(
    ("requests", "options", "reason"),
    [
        ([NativeRequest("e", "/v1/embeddings", {"model": "m", "input": "x"})], {}, "only /v1/chat"),
        (
            [NativeRequest("f", CHAT, {"model": "m", "messages": [], "functions": []})],
            {},
            "functions",
        ),
        ([chat_line(str(n), "hi") for n in range(3)], {"max_lines": 2}, "over Anthropic's limit"),
        ([chat_line("x" * 60, "hi")], {}, "64-character"),
    ],
    ids=["embeddings", "untranslatable", "too-many-lines", "long-custom-id"],
)
def test_a_group_anthropic_cannot_take_is_refused_before_any_call(
    standin: StandinAnthropicBatches,
    requests: list[NativeRequest],
    options: dict[str, Any],
    reason: str,
) -> None:
    async def scenario(client: AnthropicBatchClient) -> NativeBatch:
        return await client.submit("batch_11:anthropic:0", requests, "24h")

    with pytest.raises(UpstreamRejected, match=reason):
        run(standin, scenario, **options)
    assert standin.calls == []


def test_custom_ids_outside_anthropics_alphabet_come_back_unchanged(
    standin: StandinAnthropicBatches,
) -> None:
    ids = ["line 1", "ünïcode/42", "a:b:c", "plain_id-7"]

    async def scenario(client: AnthropicBatchClient) -> dict[str, NativeResult]:
        created = await client.submit("batch_12:anthropic:0", [chat_line(i, i) for i in ids], "24h")
        await until_ended(client, created.id)
        return await all_results(client, created.id)

    results = run(standin, scenario)

    assert sorted(results) == sorted(ids)
    for custom_id, result in results.items():
        assert result.body is not None
        assert result.body["choices"][0]["message"]["content"] == f"echo: {custom_id}"


def test_a_cancel_before_processing_cancels_every_request() -> None:
    with StandinAnthropicBatches(api_key=API_KEY, processing_seconds=3600) as slow:

        async def scenario(
            client: AnthropicBatchClient,
        ) -> tuple[NativeBatch, dict[str, NativeResult]]:
            created = await client.submit(
                "batch_13:anthropic:0", [chat_line("a", "hi"), chat_line("b", "yo")], "24h"
            )
            assert (await client.retrieve(created.id)).status is NativeStatus.RUNNING
            await client.cancel(created.id)
            return await until_ended(client, created.id), await all_results(client, created.id)

        ended, results = run(slow, scenario)

    assert ended.status is NativeStatus.CANCELLED
    assert ended.request_counts == {"total": 2, "completed": 0, "failed": 0}
    assert {custom_id: result.state for custom_id, result in results.items()} == {
        "a": "canceled",
        "b": "canceled",
    }
