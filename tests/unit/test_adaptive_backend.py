"""The HTTP backend under an adaptive limiter, against the stand-in upstream over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from service.llm.base import ChatReply, ChatRequest
from service.llm.factory import build_openai_backend
from service.llm.limiter import AdaptiveLimiter
from service.llm.openai_compat import OpenAICompatibleBackend
from service.llm.retry import RetryPolicy
from service.llm.routing import UpstreamRouter
from service.settings import UpstreamConfig, load_settings
from standins.upstream import StandinUpstream

QUICK_RETRY = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.05)


@pytest.fixture(scope="module")
def upstream() -> Iterator[StandinUpstream]:
    with StandinUpstream() as server:
        yield server


def ask(upstream: StandinUpstream, limiter: AdaptiveLimiter, text: str) -> ChatReply:
    backend = OpenAICompatibleBackend(
        base_url=upstream.base_url, api_key=None, model="m", retry=QUICK_RETRY, limiter=limiter
    )

    async def complete() -> ChatReply:
        try:
            return await backend.complete(ChatRequest([{"role": "user", "content": text}]))
        finally:
            await backend.aclose()

    return asyncio.run(complete())


def test_a_429_halves_the_limit(upstream: StandinUpstream) -> None:
    limiter = AdaptiveLimiter(8)

    reply = ask(upstream, limiter, "[[fail:429:1]] [[retry-after:0]] one 429")

    assert reply.attempts == 2
    assert limiter.limit == 4
    assert limiter.in_flight == 0


def test_a_503_with_retry_after_counts_as_overload(upstream: StandinUpstream) -> None:
    limiter = AdaptiveLimiter(8)

    ask(upstream, limiter, "[[fail:503:1]] [[retry-after:0]] one 503 asking to wait")

    assert limiter.limit == 4


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_without_retry_after_leave_the_limit(
    upstream: StandinUpstream, status: int
) -> None:
    limiter = AdaptiveLimiter(8)

    ask(upstream, limiter, f"[[fail:{status}:1]] one plain {status}")

    assert limiter.limit == 8


def test_successes_raise_a_cut_limit(upstream: StandinUpstream) -> None:
    limiter = AdaptiveLimiter(4)
    limiter.record_overload()  # 2

    for n in range(2):
        ask(upstream, limiter, f"plain call {n}")

    assert limiter.limit == 3


def test_no_slot_is_held_while_waiting_to_retry(upstream: StandinUpstream) -> None:
    limiter = AdaptiveLimiter(1)
    text = "[[fail:500:1]] [[retry-after:1]] waits a second before retrying"
    backend = OpenAICompatibleBackend(
        base_url=upstream.base_url, api_key=None, model="m", retry=QUICK_RETRY, limiter=limiter
    )

    async def scenario() -> None:
        first = asyncio.create_task(
            backend.complete(ChatRequest([{"role": "user", "content": text}]))
        )
        while not upstream.calls_matching(text):
            await asyncio.sleep(0.01)

        # With a limit of 1, this call gets through only if the first one let go.
        other = await asyncio.wait_for(
            backend.complete(ChatRequest([{"role": "user", "content": "meanwhile"}])), 0.9
        )
        assert not first.done()
        assert other.attempts == 1
        assert (await first).attempts == 2
        await backend.aclose()

    asyncio.run(scenario())
    assert limiter.in_flight == 0


def test_settings_give_every_upstream_its_own_limiter() -> None:
    settings = load_settings(
        llm_base_url="https://user:hunter2@llm.example:8443/v1",
        llm_concurrency=12,
        upstreams={"acme": UpstreamConfig(base_url="https://acme.example/v1")},
    )
    router = UpstreamRouter(settings)

    default = router.resolve("m").backend.limiter
    acme = router.resolve("acme/m").backend.limiter

    assert default is not None and acme is not None
    assert default is not acme
    assert default.max_limit == acme.max_limit == 12
    assert default.name == "llm.example:8443"
    assert "hunter2" not in repr(default)


def test_adaptive_concurrency_can_be_switched_off_leaving_a_fixed_bound() -> None:
    settings = load_settings(llm_adaptive_concurrency=False, llm_concurrency=12)

    limiter = build_openai_backend("http://llm.example/v1", None, settings).limiter

    # Workers hold more lines than call slots, so the bound stays; only adaptation goes.
    assert limiter is not None and limiter.limit == 12
    for _ in range(50):
        limiter.record_overload()
    assert limiter.limit == 12
