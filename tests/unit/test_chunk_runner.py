"""The chunk runner in-process on the offline engine: stored lines in, recorded output lines out."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis

from service.llm.offline.engine import OFFLINE_MODEL
from service.settings import load_settings
from service.store import keys
from service.store.records import NewBatch
from service.store.results import ResultStore
from service.worker.chunk_runner import ChunkRunner

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "mixed.jsonl"
PAGE_LINES = 2
EXPECTED_FIELDS = {"extract": {"entities"}, "summarize": {"summary"}, "classify": {"labels"}}


def _store_batch(client: redis.Redis, lines: list[bytes]) -> str:
    """A committed batch as intake leaves it: its hash, and its lines in pages."""
    batch_id = f"batch_{secrets.token_hex(8)}"
    now = int(time.time())
    batch = NewBatch(
        id=batch_id,
        owner="owner-a",
        total=len(lines),
        created_at=now,
        expires_at=now + 600,
        page_lines=PAGE_LINES,
    )
    client.hset(keys.batch(batch_id), mapping=batch.as_hash())  # type: ignore[arg-type]
    pages = [b"\n".join(lines[at : at + PAGE_LINES]) for at in range(0, len(lines), PAGE_LINES)]
    client.rpush(keys.batch_lines(batch_id), *pages)
    return batch_id


async def _run(
    redis_url: str, batch_id: str, total: int, chunks: list[tuple[int, int]]
) -> list[bytes]:
    runner = ChunkRunner(load_settings(llm_base_url=None), redis_url)
    try:
        for start, stop in chunks:
            await runner.run_chunk(batch_id, start, stop)
    finally:
        await runner.aclose()
    results = ResultStore(aioredis.Redis.from_url(redis_url))
    try:
        pages = [page async for page in results.iter_output(batch_id, total)]
    finally:
        await results.redis.aclose()
    return b"".join(pages).splitlines()


def test_chunks_run_every_stored_line_once_and_finish_the_batch(redis_url: str) -> None:
    lines = SAMPLES.read_bytes().splitlines()
    inputs: list[dict[str, Any]] = [orjson.loads(line) for line in lines]
    client = redis.Redis.from_url(redis_url)
    try:
        batch_id = _store_batch(client, lines)
        # Chunk boundaries that split a page, as the dispatcher's chunk size may.
        output = asyncio.run(_run(redis_url, batch_id, len(lines), [(0, 3), (3, 6)]))
        status, completed, failed = client.hmget(
            keys.batch(batch_id), ["status", "completed", "failed"]
        )
        # Running a finished chunk again runs nothing and records nothing twice.
        again = asyncio.run(_run(redis_url, batch_id, len(lines), [(0, 6)]))
        completed_again = client.hget(keys.batch(batch_id), "completed")
    finally:
        client.close()

    assert (status, completed, failed) == (b"completed", b"6", b"0")
    assert again == output
    assert completed_again == b"6"
    assert len(output) == len(inputs)
    for raw, sent in zip(output, inputs, strict=True):
        line = orjson.loads(raw)
        assert line["custom_id"] == sent["custom_id"]
        assert line["error"] is None
        assert line["response"]["status_code"] == 200
        body = line["response"]["body"]
        assert body["object"] == "chat.completion"
        assert body["model"] == OFFLINE_MODEL
        result = orjson.loads(body["choices"][0]["message"]["content"])
        # Each task's result object, as the task's schema names it.
        assert set(result) >= EXPECTED_FIELDS[sent["body"]["model"]]
        assert body["usage"]["completion_tokens"] > 0
