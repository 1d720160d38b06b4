"""The file store's shared part: metadata, listing, retention and deletion; bytes are abstract.

An upload's bytes are written by the subclass as they arrive; the metadata is
stored after the last of them, in the step that schedules the file's removal,
and the upload is answered once that is on Redis's disk too. So a file is
listed whole or not at all, and an interrupted or refused upload leaves nothing.
Batch output and error files have metadata only: their bytes are the batch's
results, streamed from the batch store, and they are removed with the batch.
A delete (or an expiry) first removes the metadata, so the file is gone at once,
then its bytes in bounded steps.
"""

from __future__ import annotations

import abc
import time
from collections.abc import AsyncIterator
from typing import Literal, cast

import redis.asyncio as aioredis

from service.errors import InvalidRequest, NotFound, PayloadTooLarge
from service.ids import new_file_id
from service.store import keys
from service.store.durability import DiskDurability, redis_unavailable_as_router_error
from service.store.files.records import FileKind, FilePage, FileRecord, RawHash
from service.store.lifecycle import BatchStatus

LIST_PAGE = 1000


class IncomingFile(abc.ABC):
    """An upload being received: bytes gathered up to a chunk, then written by the store."""

    def __init__(self, file_id: str, limit: int, chunk_bytes: int) -> None:
        self.file_id = file_id
        self.limit = limit
        self.chunk_bytes = chunk_bytes
        self.size = 0
        self._pending = bytearray()

    def append(self, data: bytes) -> None:
        """Take more bytes; PayloadTooLarge once the file goes over the limit."""
        self.size += len(data)
        if self.size > self.limit:
            raise PayloadTooLarge(f"The file is larger than {self.limit} bytes, the limit.")
        self._pending += data

    async def flush(self, *, force: bool = False) -> None:
        """Write every whole chunk gathered (and, if forced, the rest)."""
        while len(self._pending) >= self.chunk_bytes:
            chunk = bytes(self._pending[: self.chunk_bytes])
            del self._pending[: self.chunk_bytes]
            await self._write_chunk(chunk)
        if force and self._pending:
            chunk, self._pending = bytes(self._pending), bytearray()
            await self._write_chunk(chunk)

    async def finish(self) -> None:
        """Write the rest: after this every byte is with the store."""
        await self.flush(force=True)

    async def discard(self) -> None:
        """Remove what was written; safe to call more than once."""
        self._pending = bytearray()
        await self._remove_written()

    @abc.abstractmethod
    async def _write_chunk(self, chunk: bytes) -> None:
        """Append one chunk to the file's bytes."""

    @abc.abstractmethod
    async def _remove_written(self) -> None:
        """Remove every chunk written so far."""


class FileStore(abc.ABC):
    """Files' metadata in Redis; a subclass says where uploaded bytes live."""

    def __init__(self, redis: aioredis.Redis, durability: DiskDurability) -> None:
        self.redis = redis
        # Every write a client is told succeeded waits for it to be on disk first.
        self.durability = durability

    # -- where the bytes live (the subclass) -------------------------------------------

    @abc.abstractmethod
    async def begin_upload(self, limit: int) -> IncomingFile:
        """A new, empty upload with a fresh file id."""

    @abc.abstractmethod
    def read_content(self, record: FileRecord) -> AsyncIterator[bytes]:
        """An uploaded file's bytes, a chunk at a time; NotFound if they are gone."""

    @abc.abstractmethod
    def _keep_content(self, pipe: aioredis.client.Pipeline, file_id: str) -> None:
        """Queue on the commit's transaction what makes the uploaded bytes permanent."""

    @abc.abstractmethod
    async def remove_content_step(self, file_id: str) -> bool:
        """Remove one bounded slice of a file's bytes; True once none are left."""

    # -- uploads --------------------------------------------------------------------

    async def commit_upload(
        self,
        incoming: IncomingFile,
        *,
        owner: str,
        filename: str,
        purpose: str,
        keep_seconds: int,
    ) -> FileRecord:
        """Store the finished upload's metadata and schedule its removal, in one step."""
        await incoming.finish()
        now = int(time.time())
        record = FileRecord(
            id=incoming.file_id,
            owner=owner,
            bytes=incoming.size,
            created_at=now,
            filename=filename,
            purpose=purpose,
            kind=FileKind.UPLOAD,
            expires_at=now + keep_seconds,
        )
        await self.durability.check_writable()
        try:
            with self.durability.writing():
                async with self.redis.pipeline(transaction=True) as pipe:
                    self._keep_content(pipe, record.id)
                    pipe.hset(keys.file(record.id), mapping=record.as_hash())  # type: ignore[arg-type]
                    pipe.zadd(keys.owner_files(owner), {record.id: record.created_at})
                    pipe.zadd(keys.retention_schedule(), {record.id: now + keep_seconds})
                    await pipe.execute()
            await self.durability.settle()
        except BaseException:
            # Not acknowledged, so not kept: the metadata goes now (or once Redis takes
            # writes again), and the schedule entry removes the bytes after it.
            async def undo() -> None:
                await self._detach(record.id, owner)

            await self.durability.take_back(undo, f"file {record.id}")
            raise
        return record

    # -- reading --------------------------------------------------------------------

    async def get(self, file_id: str, owner: str) -> FileRecord:
        """The file, if it exists and belongs to ``owner``; otherwise NotFound."""
        with redis_unavailable_as_router_error():
            raw = cast(RawHash, await self.redis.hgetall(keys.file(file_id)))
        if not raw:
            raise NotFound(f"No file found with id '{file_id}'.", param="file_id")
        record = FileRecord.from_hash(raw)
        if record.owner != owner:
            raise NotFound(f"No file found with id '{file_id}'.", param="file_id")
        return record

    async def list_files(
        self,
        owner: str,
        *,
        limit: int,
        after: str | None = None,
        order: Literal["asc", "desc"] = "desc",
        purpose: str | None = None,
    ) -> FilePage:
        """The owner's files by creation time, starting after the file ``after``."""
        index_key = keys.owner_files(owner)
        descending = order == "desc"
        start = 0
        if after is not None:
            with redis_unavailable_as_router_error():
                rank = cast(
                    int | None,
                    await (
                        self.redis.zrevrank(index_key, after)
                        if descending
                        else self.redis.zrank(index_key, after)
                    ),
                )
            if rank is None:
                raise InvalidRequest(f"No file '{after}' in your file list.", param="after")
            start = rank + 1
        found: list[FileRecord] = []
        # One more than asked for tells whether another page follows.
        while len(found) <= limit:
            with redis_unavailable_as_router_error():
                ids = cast(
                    list[bytes],
                    await self.redis.zrange(
                        index_key, start, start + LIST_PAGE - 1, desc=descending
                    ),
                )
                if not ids:
                    break
                async with self.redis.pipeline(transaction=False) as pipe:
                    for file_id in ids:
                        pipe.hgetall(keys.file(file_id.decode()))
                    hashes = cast(list[RawHash], await pipe.execute())
            start += len(ids)
            for raw in hashes:
                if not raw:
                    continue
                record = FileRecord.from_hash(raw)
                if record.owner == owner and (purpose is None or record.purpose == purpose):
                    found.append(record)
        return FilePage(files=found[:limit], has_more=len(found) > limit)

    async def open_chunks(self, record: FileRecord) -> AsyncIterator[bytes]:
        """An uploaded file's bytes; a batch's output or error file has none of its own."""
        if record.kind is not FileKind.UPLOAD:
            raise InvalidRequest(
                f"File '{record.id}' is a batch result; its bytes are the batch's.",
                param="file_id",
            )
        async for chunk in self.read_content(record):
            yield chunk

    # -- removing -------------------------------------------------------------------

    async def delete(self, file_id: str, owner: str) -> FileRecord:
        """Remove the file at once: its metadata durably, then its bytes in bounded steps.

        A batch made from the file is not touched: it holds its own copy of the lines.
        """
        record = await self.get(file_id, owner)
        with self.durability.writing():
            await self._detach(file_id, owner)
        await self.durability.settle()
        await self.remove_content(file_id)
        return record

    async def _detach(self, file_id: str, owner: str) -> None:
        """Remove the metadata; the schedule entry, due now, stands for the bytes left."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.file(file_id))
            pipe.zrem(keys.owner_files(owner), file_id)
            pipe.zadd(keys.retention_schedule(), {file_id: 0})
            await pipe.execute()

    async def remove_content(self, file_id: str) -> int:
        """Remove the bytes of a detached file a slice at a time; returns the steps taken."""
        steps = 1
        while not await self.remove_content_step(file_id):
            steps += 1
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.file_batches(file_id))
            pipe.zrem(keys.retention_schedule(), file_id)
            await pipe.execute()
        return steps

    async def reap(self, file_id: str, now: int, postpone_seconds: float) -> bool:
        """Remove an expired file, unless a batch made from it still runs; True if removed."""
        owner = cast(bytes | None, await self.redis.hget(keys.file(file_id), "owner"))
        if owner is not None:
            if await self._used_by_running_batch(file_id):
                await self.redis.zadd(
                    keys.retention_schedule(), {file_id: now + max(1.0, postpone_seconds)}
                )
                return False
            await self._detach(file_id, owner.decode())
        await self.remove_content(file_id)
        return True

    async def _used_by_running_batch(self, file_id: str) -> bool:
        batch_ids = cast(set[bytes], await self.redis.smembers(keys.file_batches(file_id)))
        if not batch_ids:
            return False
        async with self.redis.pipeline(transaction=False) as pipe:
            for batch_id in batch_ids:
                pipe.hget(keys.batch(batch_id.decode()), "status")
            statuses = cast(list[bytes | None], await pipe.execute())
        return any(s is not None and not BatchStatus(s.decode()).is_final for s in statuses)


def new_upload_id() -> str:
    """The id an upload gets when it begins, kept as the file's id once it is stored."""
    return new_file_id()
