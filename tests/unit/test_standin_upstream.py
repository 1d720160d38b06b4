"""The stand-in upstream's own bookkeeping, which the overload tests rely on."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from standins.upstream import StandinUpstream

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


async def post_many(base_url: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        return list(
            await asyncio.gather(
                *(client.post("/chat/completions", json=CHAT) for _ in range(count))
            )
        )


def test_calls_in_flight_are_sampled_as_they_arrive_and_reset_clears_them() -> None:
    with StandinUpstream(latency=0.3) as upstream:
        responses = asyncio.run(post_many(upstream.base_url, 6))

        assert [response.status_code for response in responses] == [200] * 6
        assert sorted(count for _, count in upstream.concurrency_samples) == [1, 2, 3, 4, 5, 6]
        assert upstream.max_in_flight == 6
        assert upstream.in_flight == 0

        upstream.reset()
        assert upstream.concurrency_samples == []
        assert upstream.max_in_flight == 0


def test_calls_beyond_capacity_are_refused_with_retry_after() -> None:
    with StandinUpstream(latency=0.3, capacity=2) as upstream:
        responses = asyncio.run(post_many(upstream.base_url, 5))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200, 200, 429, 429, 429]
    refused = [response for response in responses if response.status_code == 429]
    assert all(response.headers["retry-after"] == "0" for response in refused)


def test_random_rate_limits_carry_the_configured_retry_after() -> None:
    with StandinUpstream(fault_rates={"429": 1.0}, fault_retry_after=0.25) as upstream:
        (response,) = asyncio.run(post_many(upstream.base_url, 1))

    assert response.status_code == 429
    assert response.headers["retry-after"] == "0.25"


def test_a_hung_call_stops_counting_once_its_caller_gives_up() -> None:
    hanging = {"model": "m", "messages": [{"role": "user", "content": "[[timeout]] hang"}]}

    async def give_up_after_a_moment(base_url: str) -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=0.2) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.post("/chat/completions", json=hanging)

    with StandinUpstream() as upstream:
        asyncio.run(give_up_after_a_moment(upstream.base_url))
        deadline = time.monotonic() + 2
        while upstream.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)

        assert upstream.in_flight == 0
