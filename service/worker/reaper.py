"""The workers' reaper: removes batches and files whose retention has run out.

One worker at a time (a lock like the sweeper's) reads the ids due on the
retention schedule and removes each in bounded steps (``service.store.retention``,
``FileStore.reap``): no ``KEYS``, no one-shot deletion of a large batch. An id
leaves the schedule only once all of it is gone, so a reaper killed midway is
resumed by the next one.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from service.settings import Settings
from service.store import keys
from service.store.durability import DiskDurability
from service.store.files import FileStore
from service.store.files.opening import open_file_store
from service.store.retention import BatchRemoval

log = logging.getLogger(__name__)

# Ids taken from the schedule per round; the rest wait for the next one.
DUE_PER_ROUND = 100


class Reaper:
    """Runs ``reap_once`` every ``sweep_interval`` seconds, one worker at a time."""

    def __init__(self, settings: Settings, batches: BatchRemoval, files: FileStore) -> None:
        self.settings = settings
        self.batches = batches
        self.files = files
        self._token = secrets.token_hex(8)

    async def _hold_lock(self) -> bool:
        ttl_ms = int(self.settings.sweep_interval * 2000)
        redis = self.batches.redis
        if await redis.set(keys.reaper_lock(), self._token, nx=True, px=ttl_ms):
            return True
        # Still ours from the last round: keep it, so one worker goes on reaping.
        if await redis.get(keys.reaper_lock()) == self._token.encode():
            await redis.pexpire(keys.reaper_lock(), ttl_ms)
            return True
        return False

    async def reap_once(self) -> int:
        """Remove what is due now; returns how many batches and files were removed."""
        if not await self._hold_lock():
            return 0
        now = int(time.time())
        removed = 0
        for item_id in await self.batches.due(now, DUE_PER_ROUND):
            if item_id.startswith("file-"):
                done = await self.files.reap(item_id, now, self.settings.sweep_interval)
            else:
                done = await self.batches.reap(item_id, now)
            removed += done
            # Between items other clients' commands go first.
            await asyncio.sleep(0)
        if removed:
            log.info("reaper: removed %d expired batches and files", removed)
        return removed

    async def run_forever(self) -> None:
        while True:
            try:
                await self.reap_once()
            except (redis_errors.ConnectionError, redis_errors.TimeoutError):
                log.info("reaper: Redis unreachable, will try again")
            except Exception:
                log.exception("reaper: round failed")
            await asyncio.sleep(self.settings.sweep_interval)


async def run_reaper(settings: Settings, redis: aioredis.Redis, durability: DiskDurability) -> None:
    """Open the configured file store and reap until cancelled."""
    async with open_file_store(
        settings.file_store,
        redis,
        durability,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
    ) as files:
        reaper = Reaper(settings, BatchRemoval(redis, durability, settings.reap_step), files)
        await reaper.run_forever()
