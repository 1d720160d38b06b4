"""One upstream, one limit: task and pass-through calls share it; timeouts and slowness lower it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

from service.errors import UpstreamTimeout
from service.llm.base import ChatRequest
from service.llm.factory import build_backend
from service.llm.limiter import AdaptiveLimiter
from service.llm.openai_compat import OpenAICompatibleBackend
from service.llm.retry import RetryPolicy
from service.llm.routing import UpstreamRouter
from service.settings import Settings
from standins.unruly import Scripted, UnrulyUpstream, completion

REQUEST = ChatRequest(messages=[{"role": "user", "content": "hello"}])


@pytest.fixture(scope="module")
def server() -> Iterator[UnrulyUpstream]:
    with UnrulyUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(server: UnrulyUpstream) -> UnrulyUpstream:
    server.reset()
    return server


def test_task_and_pass_through_lines_share_one_backend_and_one_limit(
    upstream: UnrulyUpstream,
) -> None:
    settings = Settings(
        llm_base_url=upstream.base_url, llm_concurrency=2, llm_adaptive_concurrency=False
    )
    backend = build_backend(settings)
    router = UpstreamRouter(settings, task_backend=backend)
    assert router.default_backend() is backend
    assert router.resolve("default/org/model").backend is backend
    upstream.rules["slowly"] = Scripted(body=completion("done"), delay_seconds=0.3)
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "slowly"}]}
    slow_task = ChatRequest(messages=[{"role": "user", "content": "slowly"}])

    async def go() -> list[Any]:
        try:
            calls: list[Coroutine[Any, Any, Any]] = [backend.complete(slow_task) for _ in range(4)]
            calls += [router.forward("/v1/chat/completions", body) for _ in range(4)]
            return await asyncio.gather(*calls)
        finally:
            await router.aclose()
            await backend.aclose()

    answers = asyncio.run(go())

    assert len(upstream.calls) == 8
    assert [answer.content for answer in answers[:4]] == ["done"] * 4
    assert [answer[0] for answer in answers[4:]] == [200] * 4
    assert upstream.most_in_flight == 2, "eight calls, never more than the limit of 2 at once"


def test_a_router_without_the_task_backend_still_builds_its_own() -> None:
    settings = Settings(llm_base_url="http://127.0.0.1:9/v1", llm_profile="vllm")
    router = UpstreamRouter(settings)
    default = router.default_backend()
    assert isinstance(default, OpenAICompatibleBackend)
    assert default.profile.name == "vllm"


def test_a_timeout_lowers_the_limit(upstream: UnrulyUpstream) -> None:
    upstream.script(Scripted(body=completion(), delay_seconds=2.0))
    limiter = AdaptiveLimiter(8, 1)
    client = OpenAICompatibleBackend(
        base_url=upstream.base_url,
        api_key=None,
        model="m",
        timeout=0.3,
        retry=RetryPolicy(max_attempts=1),
        limiter=limiter,
    )

    async def go() -> None:
        try:
            await client.complete(REQUEST)
        finally:
            await client.aclose()

    with pytest.raises(UpstreamTimeout):
        asyncio.run(go())

    assert limiter.limit == 4


def test_rising_latency_lowers_the_limit_and_fast_answers_raise_it_again() -> None:
    now = [0.0]
    limiter = AdaptiveLimiter(16, 1, window_seconds=0.0, clock=lambda: now[0])
    for _ in range(20):
        limiter.record_answer(0.5)
    assert limiter.limit == 16

    # A server that queues: answers take ten times as long, and more.
    for _ in range(10):
        limiter.record_answer(6.0)
    lowered = limiter.limit
    assert lowered < 16

    for _ in range(400):
        limiter.record_answer(0.5)
    assert limiter.limit > lowered


def test_ordinary_spread_of_latency_does_not_lower_the_limit() -> None:
    limiter = AdaptiveLimiter(16, 1)
    # Loopback jitter and tasks of different lengths: under the rise thresholds.
    for index in range(200):
        limiter.record_answer(0.05 if index % 2 else 0.6)
    assert limiter.limit == 16


def test_a_long_answer_is_judged_by_its_pace_not_its_length() -> None:
    limiter = AdaptiveLimiter(16, 1, window_seconds=0.0)
    for _ in range(20):
        limiter.record_answer(0.5, work=10)  # a short classify answer
    for _ in range(20):
        limiter.record_answer(10.0, work=200)  # a long summary at the same pace
    assert limiter.limit == 16

    for _ in range(10):
        limiter.record_answer(10.0, work=10)  # the short answer, now queued
    assert limiter.limit < 16
