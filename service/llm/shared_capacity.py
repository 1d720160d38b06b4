"""One upstream's call capacity, shared in Redis by every process, realtime calls first.

Dramatiq's priorities only order messages a worker already holds, so the
ordering lives here, at the point where a call is about to go out: a call
takes a slot if one is free and nobody waits ahead of it, otherwise it joins
a sorted set of waiters (realtime before batch, then by arrival). Whoever
frees a slot hands it to the best waiter in the same script, so a realtime
call waits for at most one slot to free up (plus one keeper tick, below),
however many batch lines queued before it. Slots are leases: a process that
dies holding one gives it back when the lease runs out.

A process keeps the slots its calls finish with, idle, and its next calls
take them without asking Redis: under steady load a call costs no Redis
round trip at all. A keeper task per process hands idle slots back after one
tick unused, renews the leases of the slots it holds, and looks whether
anyone else waits at the same or a better priority; while someone does,
finished slots go back to Redis at once, so they reach that waiter.

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
from enum import IntEnum
from typing import Any, cast

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from service.observability.metrics import capacity_waiting
from service.redis_server import connect_async
from service.store import keys
from service.store.redis_faults import is_store_fault

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

# The keeper's tick. KEYS: holders, waiters; ARGV as _PUMP, then the lease expiry to give
# held slots, the score below which a waiter is as good as this process's callers, the
# number of slots to release, those slots, then the slots whose lease to renew.
# Returns how many wait at that priority or better.
_KEEP = (
    _PUMP
    + """
local holders, waiters = KEYS[1], KEYS[2]
local released = tonumber(ARGV[7])
for i = 8, 7 + released do redis.call('ZREM', holders, ARGV[i]) end
for i = 8 + released, #ARGV do redis.call('ZADD', holders, 'XX', ARGV[5], ARGV[i]) end
pump(holders, waiters, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])
return redis.call('ZCOUNT', waiters, '-inf', '(' .. ARGV[6])
"""
)

# Score spacing: a realtime waiter (band 0) sorts before any batch waiter (band 1).
_BAND = 10**13
GRANT_POLL_SECONDS = 1.0
# How often the keeper runs; a realtime caller may wait this long for a batch slot.
KEEP_SECONDS = 0.02


# A batch line waiting for Redis to come back looks again after these pauses (doubling).
REDIS_RETRY_FIRST_PAUSE = 0.2
REDIS_RETRY_MAX_PAUSE = 2.0


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
        self._keep_script: Any = None
        # Slots this process holds in Redis, and those of them no call is using.
        self._held: set[str] = set()
        self._idle: list[str] = []
        # Callers of this process waiting in Redis for a slot.
        self._redis_waiters = 0
        # Whether, at the keeper's last look, others waited at this priority or better.
        self._others_waiting = False
        self._keeper: asyncio.Task[None] | None = None

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            self._redis = connect_async(self.redis_url)
            self._acquire = self._redis.register_script(_ACQUIRE)
            self._release = self._redis.register_script(_RELEASE)
            self._keep_script = self._redis.register_script(_KEEP)
        return self._redis

    def _common_args(self) -> list[Any]:
        return [int(time.time() * 1000), self.capacity, self.lease_ms, self._grants_prefix]

    def slot(self) -> _SharedSlot:
        """Hold one of the upstream's slots for the duration of a call."""
        return _SharedSlot(self)

    async def _hold(self) -> str:
        if self._idle and not self._others_waiting:
            return self._idle.pop()
        return await self._take()

    async def _take(self) -> str:
        """A slot from Redis; a batch line waits out a Redis restart instead of failing.

        Redis down is the service's fault, not the line's: the line runs once Redis is
        back. A realtime caller is answered at once (503) rather than held.
        """
        pause = REDIS_RETRY_FIRST_PAUSE
        while True:
            try:
                return await self._take_once()
            except redis_errors.RedisError as exc:
                if self.priority is Priority.REALTIME or not is_store_fault(exc):
                    raise
                if pause == REDIS_RETRY_FIRST_PAUSE:
                    log.warning(
                        "shared capacity: Redis unavailable (%s); lines wait for it",
                        type(exc).__name__,
                    )
            await asyncio.sleep(pause)
            pause = min(pause * 2, REDIS_RETRY_MAX_PAUSE)

    async def _take_once(self) -> str:
        """A slot from Redis: free now, or handed over when it is this caller's turn."""
        self._client()
        member = f"{self._process}|{next(self._numbers)}"
        score = self.priority * _BAND + int(time.time() * 1000)
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._granted[member] = granted
        try:
            if not await self._acquire(keys=self._keys, args=[*self._common_args(), member, score]):
                self._redis_waiters += 1
                capacity_waiting(self.priority.name.lower(), 1)
                try:
                    self._ensure_reader()
                    await self._wait(granted)
                finally:
                    self._redis_waiters -= 1
                    capacity_waiting(self.priority.name.lower(), -1)
        except BaseException:
            # Gave up (or Redis failed): leave no slot taken and no place in the queue.
            with contextlib.suppress(redis_errors.RedisError):
                await self._release(keys=self._keys, args=[*self._common_args(), member])
            raise
        finally:
            self._granted.pop(member, None)
        self._held.add(member)
        self._ensure_keeper()
        return member

    async def _put_back(self, member: str) -> None:
        """Keep a finished call's slot for the next one, unless someone else needs it."""
        if member not in self._held:
            return  # the process is closing and gave it back already
        if not (self._others_waiting or self._redis_waiters):
            self._idle.append(member)
            return
        self._held.discard(member)
        with contextlib.suppress(redis_errors.RedisError):
            await self._release(keys=self._keys, args=[*self._common_args(), member])

    def _ensure_keeper(self) -> None:
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.get_running_loop().create_task(self._keep())

    async def _keep(self) -> None:
        """Each tick: give back slots idle a whole tick, renew leases, look for waiters."""
        idle_last_tick: set[str] = set()
        renewed_at = time.monotonic()
        while self._held:
            await asyncio.sleep(KEEP_SECONDS)
            stale = [member for member in self._idle if member in idle_last_tick]
            renew: list[str] = []
            if time.monotonic() - renewed_at > self.lease_ms / 4000:
                renew = [member for member in self._held if member not in idle_last_tick]
                renewed_at = time.monotonic()
            try:
                waiting = await self._tick(stale, renew)
            except redis_errors.RedisError:
                log.info("shared capacity: Redis unreachable; keeping slots until it is back")
                idle_last_tick = set()
                continue
            self._others_waiting = waiting > self._redis_waiters
            if self._others_waiting and self._idle:
                with contextlib.suppress(redis_errors.RedisError):
                    await self._tick(list(self._idle), [])
            idle_last_tick = set(self._idle)

    async def _tick(self, release: list[str], renew: list[str]) -> int:
        """Give ``release`` back and renew ``renew``; how many wait at this priority or better."""
        for member in release:
            self._held.discard(member)
        released = set(release)
        self._idle = [member for member in self._idle if member not in released]
        now = int(time.time() * 1000)
        better_than = (self.priority + 1) * _BAND
        args = [*self._common_args(), now + self.lease_ms, better_than, len(release)]
        waiting = await self._keep_script(keys=self._keys, args=[*args, *release, *renew])
        return int(waiting)

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
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._keeper
        if self._held and self._redis is not None:
            with contextlib.suppress(redis_errors.RedisError):
                await self._tick(list(self._held), [])
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._redis is not None:
            await self._redis.aclose()


class _SharedSlot:
    """``async with capacity.slot()``: a class, not a generator, as it runs for every call
    (a generator-based context manager costs about six times as much)."""

    __slots__ = ("_capacity", "_member")

    def __init__(self, capacity: SharedCapacity) -> None:
        self._capacity = capacity
        self._member: str | None = None

    async def __aenter__(self) -> None:
        self._member = await self._capacity._hold()

    async def __aexit__(self, *_: object) -> None:
        if self._member is not None:
            await self._capacity._put_back(self._member)
