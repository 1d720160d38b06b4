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

from service.ids import new_file_id
from service.store import keys
from service.store.batches import redis_unavailable_as_router_error
from service.store.lifecycle import BatchStatus
from service.store.records import ChunkState, LineResult
from service.store.scripts import lua_script, reply_text

log = logging.getLogger(__name__)

OUTPUT_PAGE = 1000  # a multiple of 8: see iter_output
ResultSelection = Literal["all", "succeeded", "failed"]

# KEYS: batch, results, model usage, failed bitmap, output file, error file, owner's files,
#       active batches, owner's webhooks, webhook outbox, status counts, the batch's
#       provider key (deleted when the batch ends), retention schedule.
# ARGV: now, output file id, error file id, retention of a batch stored without one (seconds),
#   then per result:
#   index, output line, outcome, input tokens, output tokens, priced model, cached tokens.
_RECORD_RESULTS = lua_script("record_results.lua")


def _is_failed(bitmap: bytes, index: int) -> bool:
    byte = index >> 3
    return byte < len(bitmap) and bool(bitmap[byte] & (0x80 >> (index & 7)))


def _error_code(output_line: bytes) -> str | None:
    error = orjson.loads(output_line).get("error")
    return error.get("code") if isinstance(error, dict) else None


class ResultStore:
    """Reads the lines a worker must run and records what they gave."""

    def __init__(self, redis: aioredis.Redis, retention: int = 30 * 24 * 3600) -> None:
        self.redis = redis
        self.retention = retention
        self._record = redis.register_script(_RECORD_RESULTS)

    async def load_chunk(self, batch_id: str, start: int, stop: int) -> ChunkState:
        """The batch's state and the lines of ``[start, stop)`` that have no result yet."""
        indices = list(range(start, stop))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(
                keys.batch(batch_id),
                [
                    "status",
                    "expires_at",
                    "owner",
                    "page_lines",
                    "requested_provider",
                    "provider_key",
                    "lane",
                    "lane_chosen",
                    "completion_window",
                    "total",
                ],
            )
            pipe.hmget(keys.batch_results(batch_id), indices)
            pipe.get(keys.batch_provider_key(batch_id))
            fields, done, sealed_key = await pipe.execute()
        (
            status,
            expires_at,
            owner,
            page_lines,
            provider,
            provider_key,
            lane,
            chosen,
            window,
            total,
        ) = fields
        lines = await self.input_lines(batch_id, start, stop, int(page_lines or 1))
        state = ChunkState(
            status=BatchStatus(status.decode()) if status else None,
            expires_at=int(expires_at) if expires_at else None,
            owner=owner.decode() if owner else "",
            provider=provider.decode() if provider else None,
            provider_key=bool(provider_key),
            sealed_provider_key=sealed_key,
            lane=lane.decode() if lane else "direct",
            lane_chosen=chosen == b"1",
            completion_window=window.decode() if window else "24h",
            total=int(total or 0),
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
        args: list[Any] = [now, new_file_id(), new_file_id(), self.retention]
        for result in results:
            args += [
                result.index,
                result.output_line,
                result.outcome.value,
                result.input_tokens,
                result.output_tokens,
                result.priced_model,
                result.cached_tokens,
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
                keys.owner_webhooks(owner),
                keys.webhook_outbox(),
                keys.batch_status_counts(),
                keys.batch_provider_key(batch_id),
                keys.retention_schedule(),
            ],
            args=args,
        )
        added, final = int(reply[0]), reply_text(reply[1])
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

    async def unsucceeded_lines(
        self, batch_id: str, total: int, codes: frozenset[str] | None = None
    ) -> AsyncIterator[list[bytes]]:
        """The input lines of every line that did not succeed, a slice of lines at a time.

        The failed-lines bitmap says which; with ``codes``, only lines whose result's
        ``error.code`` is one of them. Each slice reads a bounded range, so a
        50,000-line batch is never held whole.
        """
        with redis_unavailable_as_router_error():
            page_lines = int(await self.redis.hget(keys.batch(batch_id), "page_lines") or 1)
            for start in range(0, total, OUTPUT_PAGE):
                stop = min(start + OUTPUT_PAGE, total)
                bitmap = cast(
                    bytes,
                    await self.redis.getrange(
                        keys.batch_failed_lines(batch_id), start >> 3, (stop - 1) >> 3
                    ),
                )
                chosen = [i for i in range(start, stop) if _is_failed(bitmap, i - start)]
                if chosen and codes is not None:
                    raw = await self.redis.hmget(keys.batch_results(batch_id), chosen)
                    chosen = [
                        index
                        for index, value in zip(chosen, cast(list[bytes | None], raw), strict=True)
                        if value is not None and _error_code(value) in codes
                    ]
                if not chosen:
                    continue
                lines = await self.input_lines(batch_id, chosen[0], chosen[-1] + 1, page_lines)
                yield [lines[index - chosen[0]] for index in chosen]

    async def iter_result_file(self, batch_id: str, *, failed: bool) -> AsyncIterator[bytes]:
        """The batch's output file (succeeded lines) or error file (every other line)."""
        with redis_unavailable_as_router_error():
            total = await self.redis.hget(keys.batch(batch_id), "total")
        select: ResultSelection = "failed" if failed else "succeeded"
        async for page in self.iter_output(batch_id, int(total or 0), select):
            yield page

    async def tokens_by_model(self, batch_id: str) -> dict[str, tuple[int, int]]:
        """Input and output tokens per priced model, for the batch's cost."""
        usage, _ = await self.usage_by_model(batch_id)
        return usage

    async def usage_by_model(
        self, batch_id: str
    ) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
        """Input and output tokens per priced model, and the cached input tokens of each."""
        with redis_unavailable_as_router_error():
            raw = cast(
                dict[bytes, bytes], await self.redis.hgetall(keys.batch_model_usage(batch_id))
            )
        usage: dict[str, list[int]] = {}
        cached: dict[str, int] = {}
        for field_name, value in raw.items():
            direction, _, model = field_name.decode().partition("\t")
            if direction == "cached":
                cached[model] = cached.get(model, 0) + int(value)
                continue
            usage.setdefault(model, [0, 0])[0 if direction == "in" else 1] += int(value)
        return {model: (tokens[0], tokens[1]) for model, tokens in usage.items()}, cached
