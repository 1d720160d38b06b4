"""One upstream's call capacity, shared in Redis by every process, realtime calls first.

Dramatiq's priorities only order messages a worker already holds, so the
ordering lives here, at the point where a call is about to go out: a call
takes a slot if one is free and nobody waits ahead of it, otherwise it joins
a sorted set of waiters (realtime before batch, then by arrival). Whoever
frees a slot hands it to the best waiter in the same script, so a realtime
call waits for at most one slot to free up, however many batch lines queued
before it. Slots are leases: a process that dies holding one gives it back
when the lease runs out.

Each process has one reader that blocks on its own grants list and wakes the
waiting coroutine, so waiting costs no polling and one connection a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator
from enum import IntEnum
from typing import Any, cast

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from service import keys
from service.redis_server import connect_async

log = logging.getLogger(__name__)

# Hands free slots to waiters, best first. KEYS: holders, waiters; ARGV: now ms, capacity,
# lease ms, grants key prefix. Waiter members are "<process id>|<n>".
_PUMP = """
local function pump(holders, waiters, now, capacity, lease, prefix)
  redis.call('ZREMRANGEBYSCORE', holders, '-inf', now)
  while redis.call('ZCARD', holders) < capacity do
    local best = redis.call('ZPOPMIN', waiters)
    if #best == 0 then break end
    local member = best[1]
    redis.call('ZADD', holders, now + lease, member)
    local process = string.match(member, '^([^|]+)|')
    local grants = prefix .. process
    redis.call('RPUSH', grants, member)
    redis.call('PEXPIRE', grants, lease)
  end
end
"""

# ARGV: now ms, capacity, lease ms, grants prefix, member, waiter score. 1: granted now.
_ACQUIRE = (
    _PUMP
    + """
local holders, waiters = KEYS[1], KEYS[2]
local now, capacity, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
pump(holders, waiters, now, capacity, lease, ARGV[4])
if redis.call('ZCARD', holders) < capacity then
  redis.call('ZADD', holders, now + lease, ARGV[5])
  return 1
end
redis.call('ZADD', waiters, ARGV[6], ARGV[5])
return 0
"""
)

# Give a slot back (or stop waiting for one) and pass free slots on. ARGV as _PUMP, then member.
_RELEASE = (
    _PUMP
    + """
local holders, waiters = KEYS[1], KEYS[2]
redis.call('ZREM', holders, ARGV[5])
redis.call('ZREM', waiters, ARGV[5])
pump(holders, waiters, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])
return 1
"""
)

# Score spacing: a realtime waiter (band 0) sorts before any batch waiter (band 1).
_BAND = 10**13
GRANT_POLL_SECONDS = 1.0


class Priority(IntEnum):
    """Who is calling: realtime requests are served before batch lines."""

    REALTIME = 0
    BATCH = 1


class SharedCapacity:
    """A Redis-held semaphore of ``capacity`` slots for one upstream."""

    def __init__(
        self, redis_url: str, upstream: str, capacity: int, priority: Priority, lease_seconds: float
    ) -> None:
        self.redis_url = redis_url
        self.upstream = upstream
        self.capacity = capacity
        self.priority = priority
        self.lease_ms = int(lease_seconds * 1000)
        self._process = secrets.token_hex(8)
        self._numbers = itertools.count()
        self._redis: aioredis.Redis | None = None
        self._reader: asyncio.Task[None] | None = None
        self._granted: dict[str, asyncio.Future[None]] = {}
        self._keys = [keys.capacity_holders(upstream), keys.capacity_waiters(upstream)]
        self._grants_prefix = keys.capacity_grants(upstream, "")
        self._acquire: Any = None
        self._release: Any = None

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            self._redis = connect_async(self.redis_url)
            self._acquire = self._redis.register_script(_ACQUIRE)
            self._release = self._redis.register_script(_RELEASE)
        return self._redis

    def _common_args(self) -> list[Any]:
        return [int(time.time() * 1000), self.capacity, self.lease_ms, self._grants_prefix]

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the upstream's slots for the duration of a call."""
        self._client()
        member = f"{self._process}|{next(self._numbers)}"
        now = int(time.time() * 1000)
        score = self.priority * _BAND + now
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._granted[member] = granted
        try:
            if await self._acquire(keys=self._keys, args=[*self._common_args(), member, score]):
                granted.set_result(None)
            else:
                self._ensure_reader()
                await self._wait(granted)
            yield
        finally:
            self._granted.pop(member, None)
            with contextlib.suppress(redis_errors.RedisError):
                await self._release(keys=self._keys, args=[*self._common_args(), member])

    async def _wait(self, granted: asyncio.Future[None]) -> None:
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(granted), GRANT_POLL_SECONDS)
                return
            except TimeoutError:
                # A lease may have run out with nobody releasing: let anyone waiting through.
                await self._release(keys=self._keys, args=[*self._common_args(), ""])
                self._ensure_reader()

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read_grants())

    async def _read_grants(self) -> None:
        """Wake the local waiters the scripts hand slots to, while any are waiting."""
        reader = aioredis.Redis.from_url(self.redis_url)
        grants = self._grants_prefix + self._process
        try:
            while any(not future.done() for future in self._granted.values()):
                try:
                    item = await reader.blpop([grants], timeout=GRANT_POLL_SECONDS)
                except (redis_errors.ConnectionError, redis_errors.TimeoutError):
                    await asyncio.sleep(GRANT_POLL_SECONDS)
                    continue
                if item is None:
                    continue
                member = cast(bytes, item[1]).decode()
                future = self._granted.get(member)
                if future is not None and not future.done():
                    future.set_result(None)
                elif future is None:
                    # Its waiter gave up: pass the slot on rather than hold it to lease end.
                    await self._release(keys=self._keys, args=[*self._common_args(), member])
        finally:
            await reader.aclose()

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._redis is not None:
            await self._redis.aclose()
