"""Results recorded in groups: every line once, fewer writes than lines, the batch finished."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence

import redis
import redis.asyncio as aioredis

from service.store import keys
from service.store.lifecycle import LineOutcome
from service.store.records import LineResult, NewBatch
from service.store.results import ResultStore
from service.worker.result_recorder import ResultRecorder

LINES = 300


class CountingStore(ResultStore):
    """The real store, counting its script calls."""

    calls = 0

    async def record_results(
        self, batch_id: str, owner: str, results: Sequence[LineResult], now: int
    ) -> int:
        self.calls += 1
        return await super().record_results(batch_id, owner, results, now)


def test_results_finishing_together_are_recorded_in_few_writes(redis_url: str) -> None:
    batch_id = f"batch_{secrets.token_hex(8)}"
    now = int(time.time())
    batch = NewBatch(id=batch_id, owner="o", total=LINES, created_at=now, expires_at=now + 60)
    client = redis.Redis.from_url(redis_url)
    client.hset(keys.batch(batch_id), mapping=batch.as_hash())  # type: ignore[arg-type]

    async def scenario() -> int:
        store = CountingStore(aioredis.Redis.from_url(redis_url))
        recorder = ResultRecorder(store)

        async def finish(index: int) -> None:
            await asyncio.sleep(0.001 * (index % 7))
            outcome = LineOutcome.SUCCEEDED if index % 5 else LineOutcome.FAILED
            await recorder.record(batch_id, "o", LineResult(index, b'{"n":%d}' % index, outcome))

        await asyncio.gather(*(finish(index) for index in range(LINES)))
        await store.redis.aclose()
        return store.calls

    try:
        calls = asyncio.run(scenario())
        recorded = client.hlen(keys.batch_results(batch_id))
        status, completed, failed = client.hmget(
            keys.batch(batch_id), ["status", "completed", "failed"]
        )
    finally:
        client.close()
    assert recorded == LINES
    assert (int(completed or 0), int(failed or 0)) == (LINES - LINES // 5, LINES // 5)
    assert status == b"completed"
    assert calls < LINES / 10, f"{calls} writes for {LINES} lines"
