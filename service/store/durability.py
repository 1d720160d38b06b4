"""Waits until an acknowledged write is on Redis's disk (``WAITAOF``) before the API answers.

With ``appendfsync everysec`` Redis answers a write before it is fsynced, so a
kill -9 (or a power cut) can lose a batch the client was told is stored.
``WAITAOF 1 0 <ms>`` blocks until the append-only file is fsynced up to the
calling connection's last write. A pooled client cannot tell which connection
made the write, so ``settle`` makes one tiny write of its own and waits for it
on the same connection: the AOF is written in order, so once that write is on
disk, every write acknowledged before it is too.

A server without ``WAITAOF`` (Redis < 7.2) or without an append-only file has
nothing to wait for: ``probe`` says so with one warning at start and every
``settle`` is then a no-op.

``writing`` guards each write: a Redis that refuses writes because its disk is
full (``MISCONF``) is a 507 naming the directory, not a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, cast

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from service.errors import RouterUnavailable, StorageFull
from service.store import keys
from service.store.redis_faults import is_disk_refusal, is_store_fault

log = logging.getLogger(__name__)

# A write refused to the client is taken back within this long, retrying at this pace.
TAKE_BACK_SECONDS = 600.0
TAKE_BACK_PAUSE = 0.5


@contextlib.contextmanager
def redis_unavailable_as_router_error() -> Iterator[None]:
    """Translate Redis connection faults into the API's 503 at this edge."""
    try:
        yield
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        raise RouterUnavailable(
            "The batch router cannot reach its Redis store; try again shortly."
        ) from exc
    except redis_errors.BusyLoadingError as exc:
        raise RouterUnavailable("The batch router's Redis store is still loading.") from exc


class DiskWait(enum.Enum):
    """Whether acknowledged writes wait for the disk, as found by ``probe``."""

    UNKNOWN = "unknown"
    WAITAOF = "waitaof"
    UNSUPPORTED = "unsupported"


class DiskDurability:
    """Makes each acknowledged write wait until Redis has fsynced it, where Redis can."""

    def __init__(self, redis: aioredis.Redis, timeout_ms: int) -> None:
        self.redis = redis
        self.timeout_ms = timeout_ms
        self.mode = DiskWait.UNKNOWN
        self._taking_back: set[asyncio.Task[None]] = set()
        # Where Redis keeps its files, to name in a disk-full error; learnt by ``probe``.
        self.redis_dir = "the Redis server's data directory"

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Around a write: Redis unreachable is a 503, Redis's disk full a 507."""
        try:
            with redis_unavailable_as_router_error():
                yield
        except redis_errors.ResponseError as exc:
            if not is_disk_refusal(exc):
                raise
            raise self._disk_full(str(exc)) from exc

    async def probe(self) -> DiskWait:
        """Find out once whether the server can confirm fsyncs; warn once if it cannot."""
        try:
            with redis_unavailable_as_router_error():
                await self.redis.execute_command(  # type: ignore[no-untyped-call]
                    "WAITAOF", 1, 0, self.timeout_ms
                )
        except redis_errors.ResponseError as exc:
            self.mode = DiskWait.UNSUPPORTED
            log.warning(
                "Redis cannot confirm writes are on disk (%s); a batch acknowledged just "
                "before Redis dies may be lost. Use Valkey or Redis >= 7.2 with appendonly yes.",
                str(exc).split(",")[0],
            )
        else:
            self.mode = DiskWait.WAITAOF
        with contextlib.suppress(redis_errors.RedisError):
            found = cast(dict[bytes | str, bytes | str], await self.redis.config_get("dir"))
            directory = next(iter(found.values()), None)
            if directory:
                self.redis_dir = directory.decode() if isinstance(directory, bytes) else directory
        return self.mode

    async def settle(self) -> None:
        """Return once every write acknowledged so far is on disk; 503 if not in time."""
        if self.mode is DiskWait.UNKNOWN:
            await self.probe()
        if self.mode is not DiskWait.WAITAOF:
            return
        with self.writing():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.incr(keys.durability_mark())
                pipe.execute_command("WAITAOF", 1, 0, self.timeout_ms)
                try:
                    _, (local, _replicas) = cast(tuple[int, list[int]], await pipe.execute())
                except redis_errors.ResponseError as exc:
                    if is_disk_refusal(exc):
                        raise
                    # appendonly switched off since start: nothing confirms the write.
                    raise _not_on_disk(str(exc)) from exc
        if int(local) < 1:
            if await self._aof_write_failing():
                raise self._disk_full("its append-only file cannot be written")
            raise _not_on_disk(f"not fsynced within {self.timeout_ms} ms")

    async def take_back(self, undo: Callable[[], Awaitable[None]], what: str) -> None:
        """Undo a write the client is told did not happen.

        Redis refusing writes now (its disk full, or it is away) is when this is most
        needed and least possible: then the undo is retried in the background until Redis
        takes writes again, so what was refused does not reappear once it does.
        """
        try:
            await undo()
            return
        except redis_errors.RedisError as exc:
            if not is_store_fault(exc):
                log.exception("could not take back %s", what)
                return
        log.warning("Redis refuses writes; %s is taken back once it accepts them", what)
        retry = asyncio.get_running_loop().create_task(self._take_back_later(undo, what))
        self._taking_back.add(retry)
        retry.add_done_callback(self._taking_back.discard)

    async def _take_back_later(self, undo: Callable[[], Awaitable[None]], what: str) -> None:
        deadline = time.monotonic() + TAKE_BACK_SECONDS
        while time.monotonic() < deadline:
            await asyncio.sleep(TAKE_BACK_PAUSE)
            try:
                await undo()
                return
            except redis_errors.RedisError as exc:
                if not is_store_fault(exc):
                    break
        log.error("could not take back %s; it may reappear", what)

    async def check_writable(self) -> None:
        """StorageFull if Redis has stopped writing its AOF, before a write it could not undo.

        Redis takes the first write after its disk fills (in memory) and refuses the
        next ones; a batch committed then could not be taken back.
        """
        if self.mode is DiskWait.WAITAOF and await self._aof_write_failing():
            raise self._disk_full("its append-only file cannot be written")

    async def _aof_write_failing(self) -> bool:
        """Redis's last AOF write failed (it answers writes again only once one succeeds)."""
        with contextlib.suppress(redis_errors.RedisError):
            info: dict[str, Any] = await self.redis.info("persistence")
            return str(info.get("aof_last_write_status", "ok")) != "ok"
        return False

    def _disk_full(self, reason: str) -> StorageFull:
        return StorageFull(
            f"The batch store's disk is full: Redis cannot write to {self.redis_dir} "
            f"({reason[:160]}). Nothing was stored; free space and try again."
        )


def _not_on_disk(reason: str) -> RouterUnavailable:
    return RouterUnavailable(
        f"The batch router's Redis store did not confirm the write on disk ({reason[:200]}); "
        "it may not be kept. Try again shortly."
    )
