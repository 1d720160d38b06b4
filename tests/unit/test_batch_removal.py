"""Removing a large finished batch: gone at once, its data freed in bounded steps."""

from __future__ import annotations

import asyncio
import secrets
import time

import redis
import redis.asyncio as aioredis

from service.store import keys
from service.store.batches import BatchStore
from service.store.durability import DiskDurability
from service.store.lifecycle import LineOutcome
from service.store.records import LineResult, NewBatch
from service.store.results import ResultStore
from service.store.retention import BatchRemoval

LINES = 50_000
STEP = 1000
RETENTION = 3600


async def _finished_batch(client: aioredis.Redis, batch_id: str, owner: str) -> None:
    """A 50,000-line batch committed and run to the end through the real store."""
    durability = DiskDurability(client, 5000)
    store = BatchStore(client, durability)
    upload_id = secrets.token_hex(8)
    pages = [b'{"custom_id": "l-%d", "body": {}}' % n for n in range(LINES)]
    for start in range(0, LINES, 5000):
        await store.stage_pages(upload_id, pages[start : start + 5000])
    now = int(time.time())
    batch = NewBatch(
        id=batch_id,
        owner=owner,
        total=LINES,
        created_at=now,
        expires_at=now + 3600,
        retention=RETENTION,
    )
    await store.commit_batch(batch, upload_id, order=now)
    results = ResultStore(client)
    for start in range(0, LINES, 2000):
        chunk = [
            LineResult(
                index,
                b'{"id": "r-%d"}' % index,
                LineOutcome.SUCCEEDED if index % 10 else LineOutcome.FAILED,
            )
            for index in range(start, start + 2000)
        ]
        await results.record_results(batch_id, owner, chunk, now)


def test_a_50000_line_batch_is_removed_in_steps_of_at_most_the_step_size(
    redis_url: str,
) -> None:
    batch_id = f"batch_{secrets.token_hex(16)}"
    owner = f"owner-{secrets.token_hex(4)}"
    sync = redis.Redis.from_url(redis_url)

    async def scenario() -> list[tuple[int, int]]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            await _finished_batch(client, batch_id, owner)
            removal = BatchRemoval(client, DiskDurability(client, 5000), step=STEP)
            # Given the finished batch, on the schedule since the step that ended it
            scheduled = await client.zscore(keys.retention_schedule(), batch_id)
            ended = await client.hget(keys.batch(batch_id), "completed_at")
            assert scheduled == int(ended) + RETENTION
            # When it is taken from sight, then drained a step at a time
            assert await removal.detach(batch_id, owner) == "removed"
            assert not await client.exists(keys.batch(batch_id))
            steps: list[tuple[int, int]] = []
            while True:
                step = await removal.drain_step(batch_id)
                steps.append((step.results, step.pages))
                if step.done:
                    return steps
        finally:
            await client.aclose()

    try:
        steps = asyncio.run(scenario())
        # Then no step removed more than the step size, and together they removed it all
        assert all(results <= STEP and pages <= STEP for results, pages in steps)
        assert sum(results for results, _ in steps) == LINES
        assert sum(pages for _, pages in steps) == LINES
        assert len(steps) >= LINES // STEP
        left = list(sync.scan_iter(match=f"{keys.batch(batch_id)}*", count=1000))
        assert left == []
        assert sync.zscore(keys.retention_schedule(), batch_id) is None
        assert sync.zcard(keys.owner_batches(owner)) == 0
        assert sync.zcard(keys.owner_files(owner)) == 0
    finally:
        sync.close()
