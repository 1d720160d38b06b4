"""Records finished lines in groups: one script call per batch for all that finished meanwhile.

A worker finishes hundreds of lines a second. Recording each with its own
round trip costs CPU and Redis time per line; here a line's result waits only
while the previous group's call is out, then goes with every other result that
finished in the meantime. A line's ``record`` returns once its result is
stored, so a chunk is still acknowledged only after all its lines are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from redis import exceptions as redis_errors

from service.store.records import LineResult
from service.store.results import ResultStore

log = logging.getLogger(__name__)

# A finished line's result is kept in memory and retried this long while Redis is away.
RECORD_RETRY_SECONDS = 600.0
RECORD_FIRST_PAUSE = 0.2
# Results per script call: Redis runs a script alone, so a call is kept short.
MAX_GROUP = 256

_Waiting = tuple[LineResult, "asyncio.Future[None]"]


class ResultRecorder:
    """Groups results per batch and records them, waiting out Redis restarts."""

    def __init__(self, store: ResultStore) -> None:
        self.store = store
        self._pending: dict[tuple[str, str], list[_Waiting]] = {}
        self._writer: asyncio.Task[None] | None = None

    async def record(self, batch_id: str, owner: str, result: LineResult) -> None:
        """Return once ``result`` is stored (or raise if Redis stayed away too long)."""
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault((batch_id, owner), []).append((result, stored))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())
        await stored

    async def _write(self) -> None:
        while self._pending:
            pending, self._pending = self._pending, {}
            for (batch_id, owner), waiting in pending.items():
                for start in range(0, len(waiting), MAX_GROUP):
                    group = waiting[start : start + MAX_GROUP]
                    try:
                        await self._store_group(batch_id, owner, [result for result, _ in group])
                    except Exception as exc:
                        for _, stored in group:
                            if not stored.done():
                                stored.set_exception(exc)
                    else:
                        for _, stored in group:
                            if not stored.done():
                                stored.set_result(None)

    async def _store_group(self, batch_id: str, owner: str, results: Sequence[LineResult]) -> None:
        """Record ``results``, waiting out a Redis restart rather than losing finished lines."""
        deadline = time.monotonic() + RECORD_RETRY_SECONDS
        pause = RECORD_FIRST_PAUSE
        while True:
            try:
                await self.store.record_results(batch_id, owner, results, int(time.time()))
                return
            except (
                redis_errors.ConnectionError,
                redis_errors.TimeoutError,
                redis_errors.BusyLoadingError,
            ):
                if time.monotonic() > deadline:
                    raise
                if pause == RECORD_FIRST_PAUSE:
                    log.warning(
                        "Redis unreachable; holding %d finished line(s) of %s",
                        len(results),
                        batch_id,
                    )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)

    async def drain(self, timeout: float) -> bool:
        """Wait until every result handed in so far is stored; False if not within ``timeout``."""
        deadline = time.monotonic() + timeout
        while self._writer is not None and not self._writer.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.wait({self._writer}, timeout=remaining)
        return True
