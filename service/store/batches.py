"""The batch store: submitting, reading, listing and cancelling batches in Redis.

A batch appears whole or not at all: lines are staged under an expiring key
while they are validated, then the batch is committed in one MULTI. Results
are ``service.store.results``'s business.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from service.errors import Conflict, NotFound
from service.store import keys
from service.store.durability import DiskDurability

# Re-exported: the other stores import it from here.
from service.store.durability import (
    redis_unavailable_as_router_error as redis_unavailable_as_router_error,
)
from service.store.lifecycle import BatchStatus
from service.store.records import BatchRecord, NewBatch
from service.store.scripts import lua_script

STAGING_TTL_SECONDS = 3600
# A caller's sealed provider key outlives its batch's window by this much at most: the
# batch's last lines are recorded as expired by then, which deletes it anyway.
PROVIDER_KEY_GRACE_SECONDS = 300

# Cancel only what is still running; answer with the status after the call.
_REQUEST_CANCEL = lua_script("request_cancel.lua")


def _not_found(batch_id: str) -> NotFound:
    return NotFound(f"No batch found with id '{batch_id}'.", param="batch_id")


class BatchStore:
    """Reads and writes batches for one Redis connection pool."""

    def __init__(self, redis: aioredis.Redis, durability: DiskDurability) -> None:
        self.redis = redis
        # Every write a client is told succeeded waits for it to be on disk first.
        self.durability = durability
        self._cancel = redis.register_script(_REQUEST_CANCEL)

    # -- submission -----------------------------------------------------------------

    async def stage_pages(self, upload_id: str, pages: Sequence[bytes]) -> None:
        """Append pages of validated lines to a submission's staging list.

        A page is up to a batch's ``page_lines`` lines joined by newlines; the list
        expires if the submission is never committed.
        """
        if not pages:
            return
        key = keys.staging_lines(upload_id)
        with self.durability.writing():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.rpush(key, *pages)
                pipe.expire(key, STAGING_TTL_SECONDS)
                await pipe.execute()

    async def discard_staging(self, upload_id: str) -> None:
        with contextlib.suppress(redis_errors.RedisError):
            await self.redis.delete(keys.staging_lines(upload_id))

    async def commit_batch(
        self, batch: NewBatch, upload_id: str, order: int, sealed_key: bytes | None = None
    ) -> None:
        """Turn staged lines into a batch in one transaction, marked as not yet dispatched.

        ``sealed_key``: the caller's provider key, sealed, stored with the batch.
        Returns once the batch is on Redis's disk (see ``service.store.durability``).
        """
        await self.durability.check_writable()
        with self.durability.writing():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.rename(keys.staging_lines(upload_id), keys.batch_lines(batch.id))
                pipe.persist(keys.batch_lines(batch.id))
                pipe.hset(keys.batch(batch.id), mapping=batch.as_hash())  # type: ignore[arg-type]
                pipe.zadd(keys.owner_batches(batch.owner), {batch.id: order})
                pipe.zadd(keys.undispatched(), {batch.id: batch.created_at})
                pipe.zadd(keys.active_batches(), {batch.id: batch.created_at})
                pipe.hincrby(keys.batch_status_counts(), BatchStatus.IN_PROGRESS.value, 1)
                if sealed_key is not None:
                    pipe.set(
                        keys.batch_provider_key(batch.id),
                        sealed_key,
                        exat=batch.expires_at + PROVIDER_KEY_GRACE_SECONDS,
                    )
                if batch.retry_of:
                    pipe.rpush(keys.batch_retries(batch.retry_of), batch.id)
                if batch.input_file_id:
                    # The input file is kept past its own expiry while this batch runs.
                    pipe.sadd(keys.file_batches(batch.input_file_id), batch.id)
                await pipe.execute()
        try:
            await self.durability.settle()
        except BaseException:
            await self._uncommit(batch)
            raise

    async def _uncommit(
        self, batch: NewBatch, status: BatchStatus = BatchStatus.IN_PROGRESS
    ) -> None:
        """Take back a batch the client is not told was stored (its fsync did not come).

        If Redis is unreachable the batch may stay and run; a client's retry with the
        same Idempotency-Key then finds it.
        """

        async def undo() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(
                    keys.batch(batch.id),
                    keys.batch_lines(batch.id),
                    keys.batch_provider_key(batch.id),
                )
                pipe.zrem(keys.owner_batches(batch.owner), batch.id)
                pipe.zrem(keys.undispatched(), batch.id)
                pipe.zrem(keys.active_batches(), batch.id)
                pipe.hincrby(keys.batch_status_counts(), status.value, -1)
                if batch.retry_of:
                    pipe.lrem(keys.batch_retries(batch.retry_of), 0, batch.id)
                pipe.zrem(keys.retention_schedule(), batch.id)
                if batch.input_file_id:
                    pipe.srem(keys.file_batches(batch.input_file_id), batch.id)
                await pipe.execute()

        await self.durability.take_back(undo, f"batch {batch.id}")

    async def commit_failed_batch(
        self, batch: NewBatch, errors: list[dict[str, Any]], order: int
    ) -> None:
        """Record a batch whose input was rejected (the file flow): failed, with its errors."""
        await self.durability.check_writable()
        with self.durability.writing():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(keys.batch(batch.id), mapping=batch.as_failed_hash(errors))  # type: ignore[arg-type]
                pipe.zadd(keys.owner_batches(batch.owner), {batch.id: order})
                # Its webhook event, in the same transaction; dropped at delivery if no
                # webhook of the key wants it (such batches are rare, so no check first).
                pipe.zadd(keys.webhook_outbox(), {f"{batch.id} batch.failed": batch.created_at})
                pipe.hincrby(keys.batch_status_counts(), BatchStatus.FAILED.value, 1)
                # Ended as it was made: its retention starts now.
                pipe.zadd(keys.retention_schedule(), {batch.id: batch.created_at + batch.retention})
                await pipe.execute()
        try:
            await self.durability.settle()
        except BaseException:
            await self._uncommit(batch, BatchStatus.FAILED)
            raise

    async def mark_dispatched(self, batch_id: str) -> None:
        with redis_unavailable_as_router_error():
            await self.redis.zrem(keys.undispatched(), batch_id)

    async def undispatched_before(self, cutoff: int) -> list[str]:
        """Batches committed before ``cutoff`` whose chunks may never have been queued."""
        raw = await self.redis.zrangebyscore(keys.undispatched(), "-inf", cutoff)
        return [item.decode() for item in cast(list[bytes], raw)]

    async def stalled_before(self, cutoff: int) -> list[str]:
        """Running batches with no result recorded since ``cutoff``."""
        raw = await self.redis.zrangebyscore(keys.active_batches(), "-inf", cutoff)
        return [item.decode() for item in cast(list[bytes], raw)]

    async def batch_total(self, batch_id: str) -> int | None:
        """The batch's line count, or None if it is gone or already final."""
        status, total = cast(
            list[bytes | None], await self.redis.hmget(keys.batch(batch_id), ["status", "total"])
        )
        if status is None or BatchStatus(status.decode()).is_final or total is None:
            return None
        return int(total)

    async def touch_active(self, batch_id: str, now: int) -> None:
        await self.redis.zadd(keys.active_batches(), {batch_id: now}, xx=True)

    async def forget_active(self, batch_id: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.active_batches(), batch_id)
            pipe.zrem(keys.undispatched(), batch_id)
            await pipe.execute()

    # -- reading --------------------------------------------------------------------

    async def get_batch(self, batch_id: str, owner: str) -> BatchRecord:
        """The batch, if it exists and belongs to ``owner``; otherwise NotFound."""
        with redis_unavailable_as_router_error():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(keys.batch(batch_id))
                pipe.lrange(keys.batch_retries(batch_id), 0, -1)
                raw, retried_by = await pipe.execute()
        if not raw:
            raise _not_found(batch_id)
        record = BatchRecord.from_hash(raw, retried_by)
        if record.owner != owner:
            raise _not_found(batch_id)
        return record

    async def list_batches(
        self, owner: str, limit: int, after: str | None
    ) -> tuple[list[BatchRecord], bool]:
        """The owner's batches, newest first, starting after ``after``; and whether more follow."""
        index_key = keys.owner_batches(owner)
        with redis_unavailable_as_router_error():
            start = 0
            if after is not None:
                rank = cast(int | None, await self.redis.zrevrank(index_key, after))
                if rank is None:
                    raise _not_found(after)
                start = rank + 1
            ids = cast(list[bytes], await self.redis.zrevrange(index_key, start, start + limit))
            async with self.redis.pipeline(transaction=False) as pipe:
                for batch_id in ids[:limit]:
                    pipe.hgetall(keys.batch(batch_id.decode()))
                    pipe.lrange(keys.batch_retries(batch_id.decode()), 0, -1)
                replies = await pipe.execute()
        pairs = zip(replies[0::2], replies[1::2], strict=True)
        records = [BatchRecord.from_hash(raw, retried_by) for raw, retried_by in pairs if raw]
        return records, len(ids) > limit

    async def creation_order(self, owner: str, batch_ids: Sequence[str]) -> list[float | None]:
        """Each batch's place in the owner's creation order (None for one not theirs)."""
        with redis_unavailable_as_router_error():
            return await self.redis.zmscore(keys.owner_batches(owner), list(batch_ids))

    # -- lifecycle ------------------------------------------------------------------

    async def request_cancel(self, batch_id: str, owner: str, now: int) -> BatchRecord:
        """Move a running batch to ``cancelling``; workers turn its unrun lines into errors."""
        await self.get_batch(batch_id, owner)  # 404 unless it is the caller's
        with self.durability.writing():
            status = await self._cancel(
                keys=[keys.batch(batch_id), keys.batch_status_counts()], args=[now]
            )
        await self.durability.settle()
        status_text = status.decode() if isinstance(status, bytes) else str(status)
        if status_text in {BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.EXPIRED}:
            raise Conflict(
                f"Batch '{batch_id}' is {status_text} and can no longer be cancelled.",
                code="batch_not_cancellable",
            )
        return await self.get_batch(batch_id, owner)
