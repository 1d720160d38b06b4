"""Removing a finished batch: gone from sight in one step, its data freed in bounded steps.

A batch is put on the retention schedule in the step that ends it (``record_results.lua``,
``BatchStore.commit_failed_batch``), due when its retention runs out. Removing it,
whether due or deleted by its owner, first runs ``delete_batch.lua``: the batch
hash, its output and error files and its place in the owner's lists go at once,
and the schedule entry stays, due now. Its lines and results, which for a large
batch are tens of megabytes, then go a slice at a time (HSCAN + HDEL, LTRIM), so
no single command holds Redis up; the entry leaves the schedule with the last slice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis

from service.errors import Conflict, NotFound
from service.store import keys
from service.store.durability import DiskDurability, redis_unavailable_as_router_error
from service.store.scripts import lua_script, reply_text

_DELETE_BATCH = lua_script("delete_batch.lua")
DEFAULT_STEP = 1000


@dataclass(frozen=True, slots=True)
class DrainStep:
    """What one step removed: result fields and line pages, and whether anything is left."""

    results: int
    pages: int
    done: bool


class BatchRemoval:
    """Deletes finished batches and frees their data, ``step`` fields or pages at a time."""

    def __init__(
        self, redis: aioredis.Redis, durability: DiskDurability, step: int = DEFAULT_STEP
    ) -> None:
        self.redis = redis
        self.durability = durability
        self.step = step
        self._delete = redis.register_script(_DELETE_BATCH)

    async def delete(self, batch_id: str, owner: str) -> None:
        """The owner's finished batch, gone at once and its data freed; 409 while it runs."""
        with self.durability.writing():
            outcome = await self.detach(batch_id, owner)
        if outcome == "gone":
            raise NotFound(f"No batch found with id '{batch_id}'.", param="batch_id")
        if outcome != "removed":
            raise Conflict(
                f"Batch '{batch_id}' is {outcome}; cancel it and delete it once it has ended.",
                code="batch_running",
            )
        await self.durability.settle()
        await self.drain(batch_id)

    async def reap(self, batch_id: str, now: int) -> bool:
        """Remove a batch whose retention ran out; False if it (oddly) still runs."""
        outcome = await self.detach(batch_id, "")
        if outcome not in {"removed", "gone"}:
            # Running: only its end may schedule it; look again in an hour at the latest.
            await self.redis.zadd(keys.retention_schedule(), {batch_id: now + 3600})
            return False
        await self.drain(batch_id)
        return True

    async def detach(self, batch_id: str, owner: str) -> str:
        """Run ``delete_batch.lua``: 'removed', 'gone', or the status of a running batch.

        ``owner`` empty: whoever owns it (the reaper).
        """
        for _ in range(3):
            with redis_unavailable_as_router_error():
                raw = await self.redis.hmget(
                    keys.batch(batch_id),
                    ["owner", "output_file_id", "error_file_id", "input_file_id"],
                )
            stored_owner, output_id, error_id, input_id = (reply_text(v) for v in raw)
            outcome = reply_text(
                await self._delete(
                    keys=[
                        keys.batch(batch_id),
                        keys.owner_batches(stored_owner),
                        keys.owner_files(stored_owner),
                        keys.file(output_id),
                        keys.file(error_id),
                        keys.file_batches(input_id),
                        keys.retention_schedule(),
                        keys.batch_status_counts(),
                    ],
                    args=[batch_id, output_id, error_id, 0, owner],
                )
            )
            if outcome != "moved":
                return outcome
        return "moved"

    async def drain(self, batch_id: str) -> int:
        """Free a detached batch's lines and results a step at a time; returns the steps."""
        steps = 1
        while not (await self.drain_step(batch_id)).done:
            steps += 1
        return steps

    async def drain_step(self, batch_id: str) -> DrainStep:
        """Remove at most ``step`` results and ``step`` line pages of a detached batch."""
        results_key, lines_key = keys.batch_results(batch_id), keys.batch_lines(batch_id)
        # From cursor 0 each time: what was seen before is deleted, so it starts afresh.
        # Values come back too: HSCAN's NOVALUES needs Redis 7.4.
        _, found = cast(
            tuple[int, dict[bytes, bytes]],
            await self.redis.hscan(results_key, 0, count=self.step),
        )
        fields = list(found)[: self.step]
        async with self.redis.pipeline(transaction=False) as pipe:
            if fields:
                pipe.hdel(results_key, *fields)
            pipe.llen(lines_key)
            pipe.ltrim(lines_key, self.step, -1)
            pipe.exists(results_key, lines_key)
            replies = await pipe.execute()
        pages = min(int(replies[-3]), self.step)
        if int(replies[-1]):
            return DrainStep(len(fields), pages, done=False)
        async with self.redis.pipeline(transaction=True) as pipe:
            # All small: a bit per line, a counter per model, ids; UNLINK frees them aside.
            pipe.unlink(
                keys.batch_model_usage(batch_id),
                keys.batch_failed_lines(batch_id),
                keys.batch_retries(batch_id),
                keys.batch_provider_key(batch_id),
                keys.native_plan(batch_id),
                keys.native_batches(batch_id),
                keys.native_driver(batch_id),
            )
            pipe.zrem(keys.retention_schedule(), batch_id)
            await pipe.execute()
        return DrainStep(len(fields), pages, done=True)

    async def due(self, now: int, limit: int) -> list[str]:
        """Batch and file ids whose removal is due, soonest first."""
        raw = await self.redis.zrangebyscore(
            keys.retention_schedule(), "-inf", now, start=0, num=limit
        )
        return [item.decode() for item in cast(list[bytes], raw)]
