"""The file store: uploaded files' bytes on disk, every file's metadata in Redis.

An upload is written once, to a temp file inside the store root, and renamed to
its final path only when it is complete and fsynced; its metadata is stored
after that, and the upload is answered once that is on Redis's disk too. So a
file is listed whole or not at all, an interrupted upload leaves nothing, and a
full disk is a 507 that leaves nothing either.
Batch output and error files have metadata only: their bytes are the batch's
results, streamed from the batch store.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, Literal, cast

import anyio
import redis.asyncio as aioredis

from service.errors import InvalidRequest, NotFound, PayloadTooLarge
from service.ids import new_file_id
from service.store import keys
from service.store.disk import fsync_directory, on_disk
from service.store.durability import DiskDurability, redis_unavailable_as_router_error

INCOMING_DIR = "incoming"
UPLOADS_DIR = "uploads"
WRITE_BATCH_BYTES = 1 << 20
LIST_PAGE = 1000

# A Redis hash as read back; named here because FileRecord's ``bytes`` field shadows the type.
RawHash = dict[bytes, bytes]


class FileKind(StrEnum):
    """Where a file's bytes come from."""

    UPLOAD = "upload"
    OUTPUT = "output"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class FileRecord:
    """A file as stored in its Redis hash."""

    id: str
    owner: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    kind: FileKind
    path: str | None = None
    batch_id: str | None = None

    @classmethod
    def from_hash(cls, raw: RawHash) -> FileRecord:
        text = {key.decode(): value.decode() for key, value in raw.items()}
        return cls(
            id=text["id"],
            owner=text["owner"],
            bytes=int(text.get("bytes", "0")),
            created_at=int(text["created_at"]),
            filename=text.get("filename", ""),
            purpose=text["purpose"],
            kind=FileKind(text.get("kind", FileKind.UPLOAD.value)),
            path=text.get("path"),
            batch_id=text.get("batch_id"),
        )

    def as_hash(self) -> dict[str, str | int]:
        fields: dict[str, str | int] = {
            "id": self.id,
            "owner": self.owner,
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "kind": self.kind.value,
        }
        if self.path is not None:
            fields["path"] = self.path
        if self.batch_id is not None:
            fields["batch_id"] = self.batch_id
        return fields


@dataclass(frozen=True, slots=True)
class FilePage:
    """One page of an owner's files and whether more follow it."""

    files: list[FileRecord]
    has_more: bool


class IncomingFile:
    """An upload being received: a temp file that is committed whole or removed.

    Bytes are gathered in memory up to ``WRITE_BATCH_BYTES`` and written from a
    worker thread, so memory stays bounded and the event loop is not blocked.
    """

    def __init__(
        self, file_id: str, temp_path: Path, handle: BinaryIO, limit: int, root: Path
    ) -> None:
        self.file_id = file_id
        self.root = root
        self.temp_path = temp_path
        self.limit = limit
        self.size = 0
        self._handle = handle
        self._pending = bytearray()

    def append(self, data: bytes) -> None:
        """Take more bytes; PayloadTooLarge once the file goes over the limit."""
        self.size += len(data)
        if self.size > self.limit:
            raise PayloadTooLarge(f"The file is larger than {self.limit} bytes, the limit.")
        self._pending += data

    async def flush(self, *, force: bool = False) -> None:
        """Write the gathered bytes once there are enough of them (or always, if forced)."""
        if not self._pending or (len(self._pending) < WRITE_BATCH_BYTES and not force):
            return
        data, self._pending = bytes(self._pending), bytearray()
        await on_disk(self.root, lambda: self._handle.write(data))

    async def finish(self) -> None:
        """Write the rest and fsync it: an acknowledged upload survives a power cut."""
        await self.flush(force=True)

        def sync_and_close() -> None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()

        await on_disk(self.root, sync_and_close)

    async def discard(self) -> None:
        """Remove the temp file; safe to call more than once."""
        self._pending = bytearray()

        def remove() -> None:
            # Closing flushes what the buffer holds, which fails on a full disk: the file
            # goes either way.
            with contextlib.suppress(OSError):
                self._handle.close()
            self.temp_path.unlink(missing_ok=True)

        await anyio.to_thread.run_sync(remove)


class FileStore:
    """Reads and writes files under one directory and one Redis connection pool."""

    def __init__(self, redis: aioredis.Redis, root: Path, durability: DiskDurability) -> None:
        self.redis = redis
        self.root = root
        # Every write a client is told succeeded waits for it to be on disk first.
        self.durability = durability

    # -- uploads --------------------------------------------------------------------

    def remove_abandoned_uploads(self, older_than_seconds: float = 3600) -> int:
        """Delete partial uploads left by an API process that died mid-upload."""
        incoming = self.root / INCOMING_DIR
        if not incoming.is_dir():
            return 0
        cutoff = time.time() - older_than_seconds
        removed = 0
        for part in incoming.glob("*.part"):
            with contextlib.suppress(FileNotFoundError):
                if part.stat().st_mtime < cutoff:
                    part.unlink()
                    removed += 1
        return removed

    async def begin_upload(self, limit: int) -> IncomingFile:
        """A new, empty temp file inside the root, on the same disk as its final place."""
        file_id = new_file_id()
        incoming = self.root / INCOMING_DIR
        temp_path = incoming / f"{file_id}.part"

        def create() -> BinaryIO:
            incoming.mkdir(parents=True, exist_ok=True)
            return open(temp_path, "xb")

        handle = await on_disk(self.root, create)
        return IncomingFile(file_id, temp_path, handle, limit, self.root)

    async def commit_upload(
        self, incoming: IncomingFile, *, owner: str, filename: str, purpose: str
    ) -> FileRecord:
        """Move the finished temp file to its final path, then store its metadata."""
        await incoming.finish()
        relative = f"{UPLOADS_DIR}/{incoming.file_id}"
        final_path = self.root / relative

        def place() -> None:
            final_path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(incoming.temp_path, final_path)
            fsync_directory(final_path.parent)

        try:
            await on_disk(self.root, place)
        except BaseException:
            await anyio.to_thread.run_sync(lambda: final_path.unlink(missing_ok=True))
            raise
        record = FileRecord(
            id=incoming.file_id,
            owner=owner,
            bytes=incoming.size,
            created_at=int(time.time()),
            filename=filename,
            purpose=purpose,
            kind=FileKind.UPLOAD,
            path=relative,
        )
        try:
            with self.durability.writing():
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.hset(keys.file(record.id), mapping=record.as_hash())  # type: ignore[arg-type]
                    pipe.zadd(keys.owner_files(owner), {record.id: record.created_at})
                    await pipe.execute()
            await self.durability.settle()
        except BaseException:
            # Not acknowledged, so not kept: no metadata, and without it nobody can reach
            # the bytes either.
            async def undo() -> None:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.delete(keys.file(record.id))
                    pipe.zrem(keys.owner_files(owner), record.id)
                    await pipe.execute()

            await self.durability.take_back(undo, f"file {record.id}")
            await anyio.to_thread.run_sync(lambda: final_path.unlink(missing_ok=True))
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

    async def open_chunks(
        self, record: FileRecord, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """An uploaded file's bytes, read from disk a chunk at a time off the event loop."""
        if record.kind is not FileKind.UPLOAD or record.path is None:
            raise InvalidRequest(
                f"File '{record.id}' is a batch result; its bytes are the batch's.",
                param="file_id",
            )
        path = self.root / record.path
        try:
            handle = await anyio.to_thread.run_sync(open, path, "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"The content of file '{record.id}' is gone.", param="file_id") from exc
        try:
            while chunk := await anyio.to_thread.run_sync(handle.read, chunk_size):
                yield chunk
        finally:
            handle.close()

    # -- deleting -------------------------------------------------------------------

    async def delete(self, file_id: str, owner: str) -> FileRecord:
        """Remove the file's metadata, then its bytes if it is an upload."""
        record = await self.get(file_id, owner)
        with self.durability.writing():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(keys.file(file_id))
                pipe.zrem(keys.owner_files(owner), file_id)
                await pipe.execute()
        await self.durability.settle()
        if record.kind is FileKind.UPLOAD and record.path is not None:
            path = self.root / record.path
            with contextlib.suppress(FileNotFoundError):
                await anyio.to_thread.run_sync(path.unlink)
        return record
