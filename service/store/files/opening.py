"""Opens the file store that ``TEXTBATCH_FILE_STORE`` names: Redis, or an S3 bucket."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

from service.store.durability import DiskDurability
from service.store.files.base import FileStore
from service.store.files.redis_store import RedisFileStore

S3_SCHEME = "s3://"


@contextlib.asynccontextmanager
async def open_file_store(
    location: str,
    redis: aioredis.Redis,
    durability: DiskDurability,
    *,
    s3_endpoint_url: str | None = None,
    s3_region: str | None = None,
) -> AsyncIterator[FileStore]:
    """The store for ``location`` (``redis`` or ``s3://bucket/prefix``), closed on exit."""
    if not location.startswith(S3_SCHEME):
        yield RedisFileStore(redis, durability)
        return
    # Imported here: a service keeping files in Redis never loads the AWS client.
    from aiobotocore.session import get_session

    from service.store.files.s3_store import S3FileStore

    bucket, _, prefix = location.removeprefix(S3_SCHEME).partition("/")
    session = get_session()
    async with session.create_client(
        "s3", endpoint_url=s3_endpoint_url, region_name=s3_region
    ) as s3:
        yield S3FileStore(redis, durability, s3, bucket, prefix)
