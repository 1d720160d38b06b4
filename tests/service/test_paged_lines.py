"""Input lines are stored in pages; any range of them reads back exactly, in order."""

from __future__ import annotations

import asyncio
import secrets

import orjson
import pytest
import redis.asyncio as aioredis

from service.intake.reading import PAGE_LINES
from service.store import keys
from service.store.results import ResultStore
from tests.support.batches import line, run_batch
from tests.support.service import RunningService

LINES = 3 * PAGE_LINES + 5


def test_every_range_of_a_paged_batch_reads_back_exactly(redis_url: str) -> None:
    batch_id = f"batch_{secrets.token_hex(8)}"
    expected = [b'{"n":%d}' % n for n in range(LINES)]
    pages = [
        b"\n".join(expected[start : start + PAGE_LINES]) for start in range(0, LINES, PAGE_LINES)
    ]

    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url)
        store = ResultStore(client)
        await client.rpush(keys.batch_lines(batch_id), *pages)
        try:
            for size in (1, 7, PAGE_LINES, PAGE_LINES + 1, LINES):
                for start in range(0, LINES, size):
                    stop = min(start + size, LINES)
                    got = await store.input_lines(batch_id, start, stop, PAGE_LINES)
                    assert got == expected[start:stop], (start, stop)
        finally:
            await client.delete(keys.batch_lines(batch_id))
            await client.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("count", [PAGE_LINES - 1, PAGE_LINES, LINES])
def test_batches_across_page_edges_give_every_line_once(
    offline_service: RunningService, count: int
) -> None:
    lines = [
        line(f"p-{n}", {"model": "summarize", "text": f"Line number {n} of the paged batch."})
        for n in range(count)
    ]
    with offline_service.client() as client:
        batch, output = run_batch(client, lines)
    assert batch["request_counts"] == {
        "total": count,
        "completed": count,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
    }
    assert [item["custom_id"] for item in output] == [f"p-{n}" for n in range(count)]
    for n, item in enumerate(output):
        summary = orjson.loads(item["response"]["body"]["choices"][0]["message"]["content"])
        assert str(n) in summary["summary"]
