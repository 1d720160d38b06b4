"""Uploaded bytes in an S3-compatible object store: one object per file, streamed both ways.

Chosen with ``TEXTBATCH_FILE_STORE=s3://bucket/prefix``; metadata stays in Redis.
An upload is sent as a multipart upload of ``PART_BYTES`` parts as it arrives, so
the API holds at most one part of it; it is completed before the metadata is
stored, and aborted (or the object deleted) when the upload is refused. An API
killed mid-upload leaves an incomplete multipart upload: a bucket lifecycle rule
(AbortIncompleteMultipartUpload) removes those. Credentials and region come from
the standard AWS settings (``AWS_ACCESS_KEY_ID``…, or the instance's role).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import redis.asyncio as aioredis
from botocore.exceptions import BotoCoreError, ClientError

from service.errors import FileStoreUnavailable, NotFound
from service.store.durability import DiskDurability
from service.store.files.base import FileStore, IncomingFile, new_upload_id
from service.store.files.records import FileRecord

# S3 takes parts of at least 5 MiB (all but the last).
PART_BYTES = 8 << 20
READ_BYTES = 1 << 20


@contextlib.contextmanager
def object_store_faults() -> Iterator[None]:
    """An object store that fails or cannot be reached is a 503, not a 500."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "error"))
        raise FileStoreUnavailable(
            f"The file store refused the request ({code}); try again shortly."
        ) from exc
    except BotoCoreError as exc:
        raise FileStoreUnavailable("The file store cannot be reached; try again shortly.") from exc


class S3Incoming(IncomingFile):
    """An upload sent as the parts of one multipart upload."""

    def __init__(self, file_id: str, limit: int, store: S3FileStore) -> None:
        super().__init__(file_id, limit, PART_BYTES)
        self._store = store
        self._key = store.object_key(file_id)
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._complete = False

    async def _write_chunk(self, chunk: bytes) -> None:
        s3, bucket = self._store.s3, self._store.bucket
        with object_store_faults():
            if self._upload_id is None:
                started = await s3.create_multipart_upload(Bucket=bucket, Key=self._key)
                self._upload_id = str(started["UploadId"])
            number = len(self._parts) + 1
            sent = await s3.upload_part(
                Bucket=bucket,
                Key=self._key,
                PartNumber=number,
                UploadId=self._upload_id,
                Body=chunk,
            )
        self._parts.append({"ETag": sent["ETag"], "PartNumber": number})

    async def finish(self) -> None:
        await super().finish()
        s3, bucket = self._store.s3, self._store.bucket
        with object_store_faults():
            if self._upload_id is None:
                await s3.put_object(Bucket=bucket, Key=self._key, Body=b"")
            else:
                await s3.complete_multipart_upload(
                    Bucket=bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        self._complete = True

    async def _remove_written(self) -> None:
        s3, bucket = self._store.s3, self._store.bucket
        # Best effort: what stays behind is unreachable, and the lifecycle rule ends it.
        with contextlib.suppress(ClientError, BotoCoreError):
            if self._complete:
                await s3.delete_object(Bucket=bucket, Key=self._key)
            elif self._upload_id is not None:
                await s3.abort_multipart_upload(
                    Bucket=bucket, Key=self._key, UploadId=self._upload_id
                )


class S3FileStore(FileStore):
    """Files whose bytes are objects under ``prefix`` in ``bucket``."""

    def __init__(
        self,
        redis: aioredis.Redis,
        durability: DiskDurability,
        s3: Any,
        bucket: str,
        prefix: str,
    ) -> None:
        super().__init__(redis, durability)
        # An aiobotocore S3 client, opened and closed by whoever made the store.
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def object_key(self, file_id: str) -> str:
        return f"{self.prefix}/{file_id}" if self.prefix else file_id

    async def begin_upload(self, limit: int) -> IncomingFile:
        return S3Incoming(new_upload_id(), limit, self)

    def _keep_content(self, pipe: aioredis.client.Pipeline, file_id: str) -> None:
        """Nothing to do: the object is complete before the metadata is stored."""

    async def read_content(self, record: FileRecord) -> AsyncIterator[bytes]:
        try:
            with object_store_faults():
                found = await self.s3.get_object(Bucket=self.bucket, Key=self.object_key(record.id))
        except FileStoreUnavailable as exc:
            if isinstance(exc.__cause__, ClientError) and exc.__cause__.response.get(
                "Error", {}
            ).get("Code") in {"NoSuchKey", "404"}:
                raise NotFound(
                    f"The content of file '{record.id}' is gone.", param="file_id"
                ) from exc
            raise
        async with found["Body"] as body:
            while True:
                with object_store_faults():
                    chunk = await body.read(READ_BYTES)
                if not chunk:
                    return
                yield chunk

    async def remove_content_step(self, file_id: str) -> bool:
        with object_store_faults():
            await self.s3.delete_object(Bucket=self.bucket, Key=self.object_key(file_id))
        return True
