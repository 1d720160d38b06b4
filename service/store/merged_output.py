"""One output for a batch and its retries: each line's newest result, in the original's order.

A retry holds a subset of the original's custom_ids. Its lines are indexed once
(custom_id -> which retry, which line; a later retry wins), then the original's
results are streamed a page at a time, each line whose custom_id a retry ran
swapped for that retry's result, fetched for the page in one pipelined read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import cast

import orjson

from service.errors import Conflict, InvalidRequest
from service.store import keys
from service.store.batches import BatchStore, redis_unavailable_as_router_error
from service.store.records import BatchRecord
from service.store.results import OUTPUT_PAGE, ResultStore

# Where a line's newest result is: the retry's place in the list given, and its line index.
Newest = tuple[int, int]


async def retry_chain(
    store: BatchStore, owner: str, original: BatchRecord, retry_ids: Sequence[str]
) -> list[BatchRecord]:
    """The named retries, oldest first, each checked to be a finished retry of ``original``.

    A retry of a retry counts (a chain), as long as the batch it retried is the
    original or is named too; the order given does not matter: newer wins.
    """
    unique = list(dict.fromkeys(retry_ids))
    records = [await store.get_batch(retry_id, owner) for retry_id in unique]
    order = await store.creation_order(owner, unique)
    chain = [record for _, record in sorted(zip(order, records, strict=True), key=_first)]
    known = {original.id}
    for record in chain:
        if record.retry_of not in known:
            raise InvalidRequest(
                f"Batch '{record.id}' is not a retry of '{original.id}' (nor of a retry named "
                "with it).",
                param="merged_with",
            )
        if not record.status.is_final:
            raise Conflict(
                f"Retry '{record.id}' is {record.status.value}; a merged output needs it finished.",
                code="batch_not_finished",
                param="merged_with",
            )
        known.add(record.id)
    return chain


def _first(pair: tuple[float | None, BatchRecord]) -> float:
    return pair[0] or 0.0


async def _newest(results: ResultStore, retries: Sequence[tuple[str, int]]) -> dict[str, Newest]:
    """custom_id -> where its newest result is, for every line some retry ran."""
    newest: dict[str, Newest] = {}
    for position, (retry_id, total) in enumerate(retries):
        page_lines = int(await results.redis.hget(keys.batch(retry_id), "page_lines") or 1)
        for start in range(0, total, OUTPUT_PAGE):
            stop = min(start + OUTPUT_PAGE, total)
            lines = await results.input_lines(retry_id, start, stop, page_lines)
            for offset, raw in enumerate(lines):
                newest[orjson.loads(raw)["custom_id"]] = (position, start + offset)
    return newest


async def iter_merged_output(
    results: ResultStore, batch_id: str, total: int, retries: Sequence[tuple[str, int]]
) -> AsyncIterator[bytes]:
    """The batch's output with every line a retry ran replaced by the newest retry's result.

    ``retries`` are (batch id, line count) pairs, oldest first; each is finished.
    """
    redis = results.redis
    with redis_unavailable_as_router_error():
        newest = await _newest(results, retries)
        for start in range(0, total, OUTPUT_PAGE):
            stop = min(start + OUTPUT_PAGE, total)
            raw = await redis.hmget(keys.batch_results(batch_id), list(range(start, stop)))
            lines = [value for value in cast(list[bytes | None], raw) if value is not None]
            wanted: dict[int, list[tuple[int, int]]] = {}
            for slot, value in enumerate(lines):
                where = newest.get(orjson.loads(value)["custom_id"])
                if where is not None:
                    wanted.setdefault(where[0], []).append((slot, where[1]))
            if wanted:
                async with redis.pipeline(transaction=False) as pipe:
                    for position, pairs in wanted.items():
                        retry_results = keys.batch_results(retries[position][0])
                        pipe.hmget(retry_results, [index for _, index in pairs])
                    replies = await pipe.execute()
                for pairs, values in zip(wanted.values(), replies, strict=True):
                    for (slot, _), value in zip(pairs, values, strict=True):
                        if value is not None:
                            lines[slot] = value
            yield b"".join(line + b"\n" for line in lines)
