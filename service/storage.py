"""The batch store: batches, their lines and their results in Redis.

Two guarantees live here. A batch appears whole or not at all: lines are
staged under an expiring key and the batch is committed in one MULTI. A result
is recorded exactly once: ``record_results`` writes with HSETNX inside a Lua
script that also moves the counters and, on the last line, the final status.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from service import keys
from service.errors import NotFound, RouterUnavailable
from service.records import BatchRecord, BatchStatus, ChunkState, LineResult, NewBatch

STAGING_TTL_SECONDS = 3600
OUTPUT_PAGE = 1000

# ARGV: now, then (index, output line, succeeded 1/0, input tokens, output tokens) per result.
# Returns how many results were new. Moves the batch to its final status with the
# last line: in_progress -> completed, cancelling -> cancelled, expiring -> expired.
_RECORD_RESULTS = """
local batch, results = KEYS[1], KEYS[2]
if redis.call('EXISTS', batch) == 0 then return 0 end
local now = ARGV[1]
local added = 0
for i = 2, #ARGV, 5 do
  if redis.call('HSETNX', results, ARGV[i], ARGV[i + 1]) == 1 then
    added = added + 1
    if ARGV[i + 2] == '1' then
      redis.call('HINCRBY', batch, 'completed', 1)
    else
      redis.call('HINCRBY', batch, 'failed', 1)
    end
    redis.call('HINCRBY', batch, 'input_tokens', ARGV[i + 3])
    redis.call('HINCRBY', batch, 'output_tokens', ARGV[i + 4])
  end
end
if added > 0 then
  local counts = redis.call('HMGET', batch, 'completed', 'failed', 'total', 'status')
  if tonumber(counts[1]) + tonumber(counts[2]) >= tonumber(counts[3]) then
    local status = counts[4]
    local final = 'completed'
    if status == 'cancelling' then final = 'cancelled'
    elseif status == 'expiring' then final = 'expired' end
    if status ~= final then
      redis.call('HSET', batch, 'status', final, 'finalizing_at', now, final .. '_at', now)
    end
  end
end
return added
"""


@contextlib.contextmanager
def redis_unavailable_as_router_error() -> Iterator[None]:
    """Translate Redis connection faults into the API's 503 at this edge."""
    try:
        yield
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        raise RouterUnavailable(
            "The batch router cannot reach its Redis store; try again shortly."
        ) from exc
    except redis_errors.BusyLoadingError as exc:
        raise RouterUnavailable("The batch router's Redis store is still loading.") from exc


class BatchStore:
    """Reads and writes batches for one Redis connection pool."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._record = redis.register_script(_RECORD_RESULTS)

    # -- submission -----------------------------------------------------------------

    async def stage_lines(self, upload_id: str, lines: Sequence[bytes]) -> None:
        """Append validated lines to a submission's staging list (expires if never committed)."""
        if not lines:
            return
        key = keys.staging_lines(upload_id)
        with redis_unavailable_as_router_error():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.rpush(key, *lines)
                pipe.expire(key, STAGING_TTL_SECONDS)
                await pipe.execute()

    async def discard_staging(self, upload_id: str) -> None:
        with contextlib.suppress(redis_errors.RedisError):
            await self.redis.delete(keys.staging_lines(upload_id))

    async def commit_batch(self, batch: NewBatch, upload_id: str) -> None:
        """Turn staged lines into a batch in one transaction, marked as not yet dispatched."""
        with redis_unavailable_as_router_error():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.rename(keys.staging_lines(upload_id), keys.batch_lines(batch.id))
                pipe.persist(keys.batch_lines(batch.id))
                pipe.hset(keys.batch(batch.id), mapping=batch.as_hash())  # type: ignore[arg-type]
                pipe.zadd(keys.owner_batches(batch.owner), {batch.id: batch.created_at})
                pipe.zadd(keys.undispatched(), {batch.id: batch.created_at})
                await pipe.execute()

    async def mark_dispatched(self, batch_id: str) -> None:
        with redis_unavailable_as_router_error():
            await self.redis.zrem(keys.undispatched(), batch_id)

    async def undispatched_before(self, cutoff: int) -> list[str]:
        raw = cast(list[bytes], await self.redis.zrangebyscore(keys.undispatched(), "-inf", cutoff))
        return [item.decode() for item in raw]

    # -- reading --------------------------------------------------------------------

    async def get_batch(self, batch_id: str, owner: str) -> BatchRecord:
        """The batch, if it exists and belongs to ``owner``; otherwise NotFound."""
        with redis_unavailable_as_router_error():
            raw = cast(dict[bytes, bytes], await self.redis.hgetall(keys.batch(batch_id)))
        if not raw:
            raise NotFound(f"No batch found with id '{batch_id}'.", param="batch_id")
        record = BatchRecord.from_hash(raw)
        if record.owner != owner:
            raise NotFound(f"No batch found with id '{batch_id}'.", param="batch_id")
        return record

    async def iter_output(self, batch_id: str, total: int) -> AsyncIterator[bytes]:
        """The recorded output lines in input order, a page of pipelined reads at a time."""
        results_key = keys.batch_results(batch_id)
        for start in range(0, total, OUTPUT_PAGE):
            indices = list(range(start, min(start + OUTPUT_PAGE, total)))
            with redis_unavailable_as_router_error():
                values = cast(list[bytes | None], await self.redis.hmget(results_key, indices))
            yield b"".join(value + b"\n" for value in values if value is not None)

    # -- execution ------------------------------------------------------------------

    async def load_chunk(self, batch_id: str, start: int, stop: int) -> ChunkState:
        """The batch's status and the lines of ``[start, stop)`` that have no result yet."""
        indices = list(range(start, stop))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.batch(batch_id), ["status", "expires_at"])
            pipe.lrange(keys.batch_lines(batch_id), start, stop - 1)
            pipe.hmget(keys.batch_results(batch_id), indices)
            (status, expires_at), lines, done = await pipe.execute()
        state = ChunkState(
            status=BatchStatus(status.decode()) if status else None,
            expires_at=int(expires_at) if expires_at else None,
        )
        for index, line, result in zip(indices, lines, done, strict=False):
            if result is None:
                state.pending[index] = orjson.loads(line)
        return state

    async def record_results(self, batch_id: str, results: Sequence[LineResult], now: int) -> int:
        """Record each result unless one is already there; returns how many were new."""
        if not results:
            return 0
        args: list[Any] = [now]
        for result in results:
            args += [
                result.index,
                result.output_line,
                1 if result.succeeded else 0,
                result.input_tokens,
                result.output_tokens,
            ]
        added = await self._record(
            keys=[keys.batch(batch_id), keys.batch_results(batch_id)], args=args
        )
        return int(added)
