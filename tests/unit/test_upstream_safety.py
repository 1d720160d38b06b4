"""Upstream calls are bounded: no redirects followed, a total deadline, a cap on answer size."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from service.errors import UpstreamRejected, UpstreamResponseTooLarge, UpstreamTimeout
from service.llm.base import ChatReply, ChatRequest
from service.llm.openai_compat import OpenAICompatibleBackend
from service.llm.retry import RetryPolicy
from standins.unruly import Scripted, UnrulyUpstream, completion

KEY = "sk-unruly-upstream-key-31c9"
FAST_RETRY = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.02)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[UnrulyUpstream, UnrulyUpstream]]:
    with UnrulyUpstream() as upstream, UnrulyUpstream() as elsewhere:
        yield upstream, elsewhere


@pytest.fixture
def upstream(servers: tuple[UnrulyUpstream, UnrulyUpstream]) -> UnrulyUpstream:
    servers[0].reset()
    servers[1].reset()
    return servers[0]


@pytest.fixture
def elsewhere(servers: tuple[UnrulyUpstream, UnrulyUpstream]) -> UnrulyUpstream:
    return servers[1]


def backend(upstream: UnrulyUpstream, **options: Any) -> OpenAICompatibleBackend:
    settings: dict[str, Any] = {"timeout": 5.0, "retry": FAST_RETRY} | options
    return OpenAICompatibleBackend(
        base_url=upstream.base_url, api_key=KEY, model="unruly-model", **settings
    )


def complete(client: OpenAICompatibleBackend, text: str = "the user's text") -> ChatReply:
    async def go() -> ChatReply:
        try:
            return await client.complete(ChatRequest(messages=[{"role": "user", "content": text}]))
        finally:
            await client.aclose()

    return asyncio.run(go())


def forward(
    client: OpenAICompatibleBackend, body: dict[str, Any]
) -> tuple[int, dict[str, Any], str | None]:
    async def go() -> tuple[int, dict[str, Any], str | None]:
        try:
            return await client.forward("/v1/chat/completions", body)
        finally:
            await client.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("status", [307, 302, 301, 308])
def test_a_redirect_is_never_followed_and_rejects_the_line(
    upstream: UnrulyUpstream, elsewhere: UnrulyUpstream, status: int
) -> None:
    target = f"{elsewhere.base_url}/chat/completions"
    upstream.script(Scripted(status=status, headers={"Location": target}))

    with pytest.raises(UpstreamRejected) as caught:
        complete(backend(upstream), "secret user text")

    assert caught.value.code == "upstream_rejected"
    assert caught.value.upstream_status == status
    assert "redirect" in caught.value.message
    assert len(upstream.calls) == 1, "a redirect is not retried"
    assert elsewhere.calls == [], "the other host was never reached"


def test_a_pass_through_redirect_is_not_followed_either(
    upstream: UnrulyUpstream, elsewhere: UnrulyUpstream
) -> None:
    target = f"{elsewhere.base_url}/chat/completions"
    upstream.script(Scripted(status=307, headers={"Location": target}))
    body = {"model": "m", "messages": [{"role": "user", "content": "private"}]}

    with pytest.raises(UpstreamRejected) as caught:
        forward(backend(upstream), body)

    assert caught.value.upstream_status == 307
    assert elsewhere.calls == []


def test_an_answer_dripped_byte_by_byte_hits_the_total_deadline(upstream: UnrulyUpstream) -> None:
    # Headers at once, then one byte every 0.2 s: each wait for bytes is short, the whole is not.
    upstream.script(*[Scripted(body=completion("x" * 50), drip_seconds=0.2)] * 2)
    client = backend(upstream, timeout=1.0, retry=RetryPolicy(2, backoff_base=0.01))

    with pytest.raises(UpstreamTimeout) as caught:
        complete(client)

    assert caught.value.attempts == 2
    assert len(upstream.calls) == 2


def test_a_huge_answer_is_cut_off_at_the_cap_without_reading_it_all(
    upstream: UnrulyUpstream,
) -> None:
    huge = 200 * 1024 * 1024
    upstream.script(Scripted(body=completion("FILL"), huge_bytes=huge))
    client = backend(upstream, max_response_bytes=1024 * 1024)

    with pytest.raises(UpstreamResponseTooLarge) as caught:
        complete(client)

    assert caught.value.code == "upstream_response_too_large"
    assert len(upstream.calls) == 1, "an oversized answer is not asked for again"
    # The connection was dropped early: only socket buffers' worth got out, not 200 MB.
    assert upstream.bytes_written < 50 * 1024 * 1024


def test_an_answer_declaring_too_many_bytes_is_refused_at_once(upstream: UnrulyUpstream) -> None:
    upstream.script(Scripted(body=completion("y" * 300_000)))

    with pytest.raises(UpstreamResponseTooLarge):
        complete(backend(upstream, max_response_bytes=100_000))


def test_an_answer_under_the_cap_is_read_whole(upstream: UnrulyUpstream) -> None:
    upstream.script(Scripted(body=completion("z" * 50_000)))

    reply = complete(backend(upstream, max_response_bytes=100_000))

    assert reply.content == "z" * 50_000


def test_a_huge_pass_through_answer_is_refused(upstream: UnrulyUpstream) -> None:
    upstream.script(Scripted(body=completion("FILL"), huge_bytes=20 * 1024 * 1024))

    with pytest.raises(UpstreamResponseTooLarge):
        forward(backend(upstream, max_response_bytes=1024 * 1024), {"model": "m"})


def test_an_echoed_key_never_leaves_a_pass_through_answer(upstream: UnrulyUpstream) -> None:
    echo = {"error": {"message": f"bad key Bearer {KEY} for {KEY[:8]}", "code": "invalid_api_key"}}
    upstream.script(Scripted(status=401, body=echo), Scripted(status=200, body={"echo": KEY}))
    client = backend(upstream)

    status, answer, _ = forward(client, {"model": "m"})
    assert status == 401
    assert KEY not in str(answer)
    assert answer["error"]["message"] == f"bad key Bearer *** for {KEY[:8]}"

    status, answer, _ = forward(backend(upstream), {"model": "m"})
    assert status == 200
    assert answer == {"echo": "***"}
    assert upstream.authorizations == [f"Bearer {KEY}"] * 2


def test_retries_log_no_user_text_at_info(
    upstream: UnrulyUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    # A server error that quotes the request, as some do.
    text = "Patient Jane Roe, born 1970"
    failing = Scripted(status=500, body={"error": {"message": f"could not handle: {text}"}})
    upstream.script(failing, failing)

    with caplog.at_level(logging.INFO, logger="service.llm"):
        reply = complete(backend(upstream), text)

    assert reply.content == "ok"
    assert reply.attempts == 3
    info = [record for record in caplog.records if record.levelno >= logging.INFO]
    assert any("retrying" in record.getMessage() for record in info)
    assert not any("Jane Roe" in record.getMessage() for record in info)
