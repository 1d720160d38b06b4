"""The workers' safety net: queue batches whose chunks were never queued or went missing.

Chunks are normally queued by the API right after a batch is committed, and a
dead worker's chunks come back through the broker's heartbeat check. Two gaps
remain: the API dying between commit and queueing, and queue state lost with
Redis (an append-only file flushed once a second can lose the last second).
Running a chunk twice is harmless (results are recorded once), so the sweeper
simply queues every chunk of such a batch again; chunks with nothing left to do
finish at once.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

import anyio
from redis import exceptions as redis_errors

from service.settings import Settings
from service.store import keys
from service.store.batches import BatchStore
from service.worker.queue import ChunkDispatcher

log = logging.getLogger(__name__)


class Sweeper:
    """Runs ``sweep_once`` every ``sweep_interval`` seconds, one worker at a time."""

    def __init__(self, settings: Settings, store: BatchStore, dispatcher: ChunkDispatcher) -> None:
        self.settings = settings
        self.store = store
        self.dispatcher = dispatcher
        self._token = secrets.token_hex(8)

    async def _hold_lock(self) -> bool:
        ttl_ms = int(self.settings.sweep_interval * 2000)
        return bool(
            await self.store.redis.set(keys.sweeper_lock(), self._token, nx=True, px=ttl_ms)
        )

    async def _requeue(self, batch_id: str, why: str) -> None:
        total = await self.store.batch_total(batch_id)
        if total is None:
            await self.store.forget_active(batch_id)
            return
        count = await anyio.to_thread.run_sync(self.dispatcher.dispatch, batch_id, total)
        await self.store.mark_dispatched(batch_id)
        await self.store.touch_active(batch_id, int(time.time()))
        log.warning("re-queued %d chunks of batch %s (%s)", count, batch_id, why)

    async def sweep_once(self) -> None:
        if not await self._hold_lock():
            return
        now = int(time.time())
        grace = self.settings.dispatch_grace
        for batch_id in await self.store.undispatched_before(now - grace):
            await self._requeue(batch_id, "never queued")
        # With no message left anywhere, a running batch that stopped moving has lost its
        # chunks; otherwise wait the longer stall timeout, as its chunks may just be slow.
        idle = await anyio.to_thread.run_sync(self.dispatcher.queued_messages) == 0
        cutoff = now - (grace if idle else self.settings.stall_timeout)
        for batch_id in await self.store.stalled_before(cutoff):
            await self._requeue(batch_id, "queue empty" if idle else "no progress")

    async def run_forever(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except (redis_errors.ConnectionError, redis_errors.TimeoutError):
                log.info("sweeper: Redis unreachable, will try again")
            except Exception:
                log.exception("sweeper: sweep failed")
            await asyncio.sleep(self.settings.sweep_interval)
