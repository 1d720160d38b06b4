"""A native batch's state in Redis: its plan of upstream groups and their upstream batches."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from service.store import keys
from service.store.durability import DiskDurability
from service.store.lifecycle import BatchStatus


@dataclass(frozen=True, slots=True)
class NativeGroup:
    """Lines sent together as one upstream batch."""

    number: int
    provider: str
    indices: list[int]


@dataclass(slots=True)
class UpstreamBatchEntry:
    """One upstream batch as last seen, for the batch object and for resuming."""

    provider: str
    id: str
    status: str
    request_counts: dict[str, int] = field(default_factory=dict)
    # Set once its results are recorded, so a resumed worker does not read them again.
    recorded: bool = False


class NativeStore:
    """Reads and writes the upstream side of native batches."""

    def __init__(self, redis: aioredis.Redis, durability: DiskDurability) -> None:
        self.redis = redis
        self.durability = durability

    async def plan(self, batch_id: str, proposed: list[NativeGroup]) -> list[NativeGroup]:
        """The batch's plan: ``proposed`` if it had none yet, else the one stored first."""
        raw = orjson.dumps([asdict(group) for group in proposed])
        await self.redis.set(keys.native_plan(batch_id), raw, nx=True)
        stored = cast(bytes, await self.redis.get(keys.native_plan(batch_id)))
        return [NativeGroup(**item) for item in orjson.loads(stored)]

    async def entries(self, batch_id: str) -> dict[int, UpstreamBatchEntry]:
        """Every upstream batch stored for ``batch_id``, by group number."""
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(keys.native_batches(batch_id)))
        return {int(k): UpstreamBatchEntry(**orjson.loads(v)) for k, v in raw.items()}

    async def save(self, batch_id: str, group: int, entry: UpstreamBatchEntry) -> None:
        """Store a group's upstream batch, waiting until it is on disk where Redis can."""
        with self.durability.writing():
            await self.redis.hset(
                keys.native_batches(batch_id), str(group), orjson.dumps(asdict(entry))
            )
        await self.durability.settle()

    async def hold_driver(self, batch_id: str, token: str, ttl_ms: int) -> bool:
        """Take or keep the right to drive the batch; False while another worker holds it."""
        key = keys.native_driver(batch_id)
        if await self.redis.set(key, token, nx=True, px=ttl_ms):
            return True
        if await self.redis.get(key) == token.encode():
            await self.redis.pexpire(key, ttl_ms)
            return True
        return False

    async def release_driver(self, batch_id: str, token: str) -> None:
        key = keys.native_driver(batch_id)
        if await self.redis.get(key) == token.encode():
            await self.redis.delete(key)

    async def status(self, batch_id: str) -> BatchStatus:
        """The batch's status; a batch gone (deleted) counts as failed."""
        raw = cast(bytes | None, await self.redis.hget(keys.batch(batch_id), "status"))
        return BatchStatus(raw.decode()) if raw else BatchStatus.FAILED

    async def touch_active(self, batch_id: str, now: int) -> None:
        """Tell the sweeper the batch moves while its upstream batches run."""
        await self.redis.zadd(keys.active_batches(), {batch_id: now}, xx=True)


async def provider_batches(redis: aioredis.Redis, batch_id: str) -> list[dict[str, Any]]:
    """The batch object's ``provider_batches``, in group order (empty for a direct batch)."""
    raw = cast(dict[bytes, bytes], await redis.hgetall(keys.native_batches(batch_id)))
    entries = {int(k): UpstreamBatchEntry(**orjson.loads(v)) for k, v in raw.items()}
    return entries_view(entries)


def entries_view(entries: dict[int, UpstreamBatchEntry]) -> list[dict[str, Any]]:
    """The batch object's ``provider_batches``, in group order."""
    return [
        {
            "provider": entry.provider,
            "id": entry.id,
            "status": entry.status,
            "request_counts": entry.request_counts,
        }
        for _, entry in sorted(entries.items())
    ]
