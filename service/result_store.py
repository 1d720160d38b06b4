"""Line results in Redis: recorded exactly once, read back in input order.

``record_results`` runs one Lua script that writes each result with HSETNX
(so a line run twice is recorded once), moves the counters and per-model
usage, and with the last line sets the final status and creates the batch's
output and error files. Everything a result changes changes atomically.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal, cast

import orjson
import redis.asyncio as aioredis

from service import keys
from service.ids import new_file_id
from service.records import BatchStatus, ChunkState, LineResult
from service.storage import redis_unavailable_as_router_error

log = logging.getLogger(__name__)

OUTPUT_PAGE = 1000  # a multiple of 8: see iter_output
ResultSelection = Literal["all", "succeeded", "failed"]

# KEYS: batch, results, model usage, failed bitmap, output file, error file, owner's files,
#       active batches.
# ARGV: now, output file id, error file id, then per result:
#   index, output line, outcome, input tokens, output tokens, priced model.
_RECORD_RESULTS = """
local batch, results, usage, failed_bits = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('EXISTS', batch) == 0 then return {0, ''} end
local now = ARGV[1]
local added = 0
for i = 4, #ARGV, 6 do
  local index, line, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('HSETNX', results, index, line) == 1 then
    added = added + 1
    if outcome == 'succeeded' then
      redis.call('HINCRBY', batch, 'completed', 1)
      redis.call('HINCRBY', batch, 'output_bytes', #line + 1)
    else
      redis.call('HINCRBY', batch, 'failed', 1)
      redis.call('HINCRBY', batch, 'error_bytes', #line + 1)
      redis.call('SETBIT', failed_bits, tonumber(index), 1)
      if outcome == 'expired' then redis.call('HINCRBY', batch, 'expired_lines', 1) end
    end
    local tokens_in, tokens_out, model = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]), ARGV[i + 5]
    redis.call('HINCRBY', batch, 'input_tokens', tokens_in)
    redis.call('HINCRBY', batch, 'output_tokens', tokens_out)
    if model ~= '' and tokens_in + tokens_out > 0 then
      redis.call('HINCRBY', usage, 'in\\t' .. model, tokens_in)
      redis.call('HINCRBY', usage, 'out\\t' .. model, tokens_out)
    end
  end
end
if added == 0 then return {0, ''} end
local f = redis.call('HMGET', batch, 'completed', 'failed', 'total', 'status', 'expired_lines',
                     'owner', 'id', 'output_bytes', 'error_bytes')
-- Progress: the sweeper re-queues only batches that stop making any.
redis.call('ZADD', KEYS[8], 'XX', now, f[7])
local completed, failed, total = tonumber(f[1]), tonumber(f[2]), tonumber(f[3])
if completed + failed < total then return {added, ''} end
local status = f[4]
if status == 'completed' or status == 'cancelled' or status == 'expired' then
  return {added, ''}
end
local final = 'completed'
if status == 'cancelling' then final = 'cancelled'
elseif tonumber(f[5] or '0') > 0 then final = 'expired' end
redis.call('HSET', batch, 'status', final, 'finalizing_at', now, final .. '_at', now)
redis.call('ZREM', KEYS[8], f[7])
local function create_file(key, id, kind, size)
  redis.call('HSET', key, 'id', id, 'owner', f[6], 'bytes', size, 'created_at', now,
             'filename', f[7] .. '_' .. kind .. '.jsonl', 'purpose', 'batch_output',
             'batch_id', f[7], 'kind', kind)
  redis.call('ZADD', KEYS[7], now, id)
  redis.call('HSET', batch, kind .. '_file_id', id)
end
if completed > 0 then create_file(KEYS[5], ARGV[2], 'output', f[8] or '0') end
if failed > 0 then create_file(KEYS[6], ARGV[3], 'error', f[9] or '0') end
-- The final status, only from the one call that set it: the service logs it once.
return {added, final, completed, failed, total}
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _is_failed(bitmap: bytes, index: int) -> bool:
    byte = index >> 3
    return byte < len(bitmap) and bool(bitmap[byte] & (0x80 >> (index & 7)))


class ResultStore:
    """Reads the lines a worker must run and records what they gave."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._record = redis.register_script(_RECORD_RESULTS)

    async def load_chunk(self, batch_id: str, start: int, stop: int) -> ChunkState:
        """The batch's state and the lines of ``[start, stop)`` that have no result yet."""
        indices = list(range(start, stop))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.batch(batch_id), ["status", "expires_at", "owner", "page_lines"])
            pipe.hmget(keys.batch_results(batch_id), indices)
            (status, expires_at, owner, page_lines), done = await pipe.execute()
        lines = await self.input_lines(batch_id, start, stop, int(page_lines or 1))
        state = ChunkState(
            status=BatchStatus(status.decode()) if status else None,
            expires_at=int(expires_at) if expires_at else None,
            owner=owner.decode() if owner else "",
        )
        for index, line, result in zip(indices, lines, done, strict=False):
            if result is None:
                state.pending[index] = orjson.loads(line)
        return state

    async def input_lines(
        self, batch_id: str, start: int, stop: int, page_lines: int
    ) -> list[bytes]:
        """Input lines ``[start, stop)`` of a batch stored in pages of ``page_lines``."""
        first, last = start // page_lines, (stop - 1) // page_lines
        pages = cast(list[bytes], await self.redis.lrange(keys.batch_lines(batch_id), first, last))
        lines = b"\n".join(pages).split(b"\n") if pages else []
        offset = first * page_lines
        return lines[start - offset : stop - offset]

    async def batch_status(self, batch_id: str) -> tuple[BatchStatus | None, int | None]:
        raw = await self.redis.hmget(keys.batch(batch_id), ["status", "expires_at"])
        status, expires_at = cast(list[bytes | None], raw)
        return (
            BatchStatus(status.decode()) if status else None,
            int(expires_at) if expires_at else None,
        )

    async def record_results(
        self, batch_id: str, owner: str, results: Sequence[LineResult], now: int
    ) -> int:
        """Record each result unless one is already there; returns how many were new."""
        if not results:
            return 0
        args: list[Any] = [now, new_file_id(), new_file_id()]
        for result in results:
            args += [
                result.index,
                result.output_line,
                result.outcome.value,
                result.input_tokens,
                result.output_tokens,
                result.priced_model,
            ]
        reply = await self._record(
            keys=[
                keys.batch(batch_id),
                keys.batch_results(batch_id),
                keys.batch_model_usage(batch_id),
                keys.batch_failed_lines(batch_id),
                keys.file(str(args[1])),
                keys.file(str(args[2])),
                keys.owner_files(owner),
                keys.active_batches(),
            ],
            args=args,
        )
        added, final = int(reply[0]), _text(reply[1])
        if final:
            completed, failed, total = (int(value) for value in reply[2:5])
            log.info(
                "batch %s %s: %d succeeded, %d failed of %d lines",
                batch_id,
                final,
                completed,
                failed,
                total,
            )
        return added

    async def iter_output(
        self, batch_id: str, total: int, select: ResultSelection = "all"
    ) -> AsyncIterator[bytes]:
        """Recorded output lines in input order, a page of pipelined reads at a time."""
        results_key = keys.batch_results(batch_id)
        for start in range(0, total, OUTPUT_PAGE):
            stop = min(start + OUTPUT_PAGE, total)
            with redis_unavailable_as_router_error():
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.hmget(results_key, list(range(start, stop)))
                    # Pages start at a multiple of 8, so bit offsets line up with this slice.
                    pipe.getrange(keys.batch_failed_lines(batch_id), start >> 3, (stop - 1) >> 3)
                    values, bitmap = await pipe.execute()
            page = bytearray()
            for offset, value in enumerate(cast(list[bytes | None], values)):
                if value is None:
                    continue
                if select != "all" and _is_failed(bitmap, offset) != (select == "failed"):
                    continue
                page += value
                page += b"\n"
            yield bytes(page)

    async def iter_result_file(self, batch_id: str, *, failed: bool) -> AsyncIterator[bytes]:
        """The batch's output file (succeeded lines) or error file (every other line)."""
        with redis_unavailable_as_router_error():
            total = await self.redis.hget(keys.batch(batch_id), "total")
        select: ResultSelection = "failed" if failed else "succeeded"
        async for page in self.iter_output(batch_id, int(total or 0), select):
            yield page

    async def tokens_by_model(self, batch_id: str) -> dict[str, tuple[int, int]]:
        """Input and output tokens per priced model, for the batch's cost."""
        with redis_unavailable_as_router_error():
            raw = cast(
                dict[bytes, bytes], await self.redis.hgetall(keys.batch_model_usage(batch_id))
            )
        usage: dict[str, list[int]] = {}
        for field_name, value in raw.items():
            direction, _, model = field_name.decode().partition("\t")
            usage.setdefault(model, [0, 0])[0 if direction == "in" else 1] += int(value)
        return {model: (tokens[0], tokens[1]) for model, tokens in usage.items()}
