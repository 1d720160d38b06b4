"""Uploaded bytes in Redis: a list of 1 MiB chunks per file, written and read a chunk at a time.

Every API process (and worker) on the same Redis sees the same files, so uploads
need no shared disk. The API holds at most about one chunk of a file at a time,
both ways. Chunks are written as the upload arrives under a key that expires, so
an API that dies mid-upload leaves nothing for long; the commit makes the key
permanent in the same step that stores the metadata, and waits for Redis's fsync
like every acknowledged write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import redis.asyncio as aioredis

from service.errors import NotFound
from service.store import keys
from service.store.durability import DiskDurability, redis_unavailable_as_router_error
from service.store.files.base import FileStore, IncomingFile, new_upload_id
from service.store.files.records import FileRecord

CONTENT_CHUNK_BYTES = 1 << 20
# An upload not committed within this long is dropped by Redis itself.
UPLOAD_TTL_SECONDS = 3600
# Chunks removed per step: a step frees at most this many MiB.
REMOVE_CHUNKS_PER_STEP = 16


class RedisIncoming(IncomingFile):
    """An upload whose chunks are appended to the file's content list as they fill."""

    def __init__(self, file_id: str, limit: int, redis: aioredis.Redis, durability: DiskDurability):
        super().__init__(file_id, limit, CONTENT_CHUNK_BYTES)
        self._redis = redis
        self._durability = durability
        self._key = keys.file_content(file_id)

    async def _write_chunk(self, chunk: bytes) -> None:
        with self._durability.writing():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.rpush(self._key, chunk)
                pipe.expire(self._key, UPLOAD_TTL_SECONDS)
                await pipe.execute()

    async def _remove_written(self) -> None:
        async def undo() -> None:
            await self._redis.unlink(self._key)

        await self._durability.take_back(undo, f"upload {self.file_id}")


class RedisFileStore(FileStore):
    """Files whose bytes are kept in Redis next to their metadata."""

    async def begin_upload(self, limit: int) -> IncomingFile:
        return RedisIncoming(new_upload_id(), limit, self.redis, self.durability)

    def _keep_content(self, pipe: aioredis.client.Pipeline, file_id: str) -> None:
        pipe.persist(keys.file_content(file_id))

    async def read_content(self, record: FileRecord) -> AsyncIterator[bytes]:
        key = keys.file_content(record.id)
        chunks = -(-record.bytes // CONTENT_CHUNK_BYTES)
        for index in range(chunks):
            with redis_unavailable_as_router_error():
                chunk = cast(bytes | None, await self.redis.lindex(key, index))
            if chunk is None:
                raise NotFound(f"The content of file '{record.id}' is gone.", param="file_id")
            yield chunk

    async def remove_content_step(self, file_id: str) -> bool:
        key = keys.file_content(file_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            # Keeps the list from the given index on: drops its first chunks.
            pipe.ltrim(key, REMOVE_CHUNKS_PER_STEP, -1)
            pipe.exists(key)
            _, left = await pipe.execute()
        return not left
