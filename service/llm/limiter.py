"""An AIMD limit on concurrent upstream calls: halve it on overload, grow it back as calls succeed.

Overload is a 429, a 503 with Retry-After, a timeout, or an answer much slower than
the usual ones (a server that queues work shows it so before it times out).

A fixed concurrency either wastes a fast upstream or hammers a struggling one.
``AdaptiveLimiter`` starts at its maximum, halves its limit when the upstream
signals overload (a 429, or a 503 with Retry-After) and adds one for every
``limit`` successes, which is about one per round trip at full use.

Two kinds of overload signal do not cut the limit:

- a stray one: if no more than ``overload_tolerance`` of the last ``limit``
  answers were overloads, the upstream is coping and the retry handles it;
- the rest of a burst: every call in flight when the upstream tipped over
  answers 429, so after a cut further signals are ignored until as many calls
  have finished as the limit held before it (the calls sent under the old limit
  have drained), or ``window_seconds`` have passed (calls that hang must not
  hold the window open).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

logger = logging.getLogger(__name__)

# Answers seen before latency is judged, and how much the fastest pace drifts up per answer.
_LATENCY_WARMUP = 8
_PACE_DRIFT = 0.002


class _Slot:
    """``async with limiter.slot()``: a class, not a generator, as it runs for every call
    (a generator-based context manager costs about six times as much)."""

    __slots__ = ("_limiter",)

    def __init__(self, limiter: AdaptiveLimiter) -> None:
        self._limiter = limiter

    async def __aenter__(self) -> None:
        await self._limiter._acquire()

    async def __aexit__(self, *_: object) -> None:
        self._limiter._release(finished=True)


class AdaptiveLimiter:
    """Bounds calls in flight by a limit that adapts between ``min_limit`` and ``max_limit``.

    It holds no event loop until first used, so it can be built before the loop
    runs; it serves one loop at a time.
    """

    def __init__(
        self,
        max_limit: int,
        min_limit: int = 1,
        *,
        name: str = "upstream",
        window_seconds: float = 1.0,
        overload_tolerance: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        latency_rise: float = 4.0,
        latency_rise_seconds: float = 1.0,
    ) -> None:
        if min_limit < 1 or max_limit < min_limit:
            raise ValueError("limits must satisfy 1 <= min_limit <= max_limit")
        if window_seconds < 0:
            raise ValueError("window_seconds must not be negative")
        if not 0 <= overload_tolerance < 1:
            raise ValueError("overload_tolerance must be at least 0 and below 1")
        self.max_limit = max_limit
        self.min_limit = min_limit
        self.name = name
        self.window_seconds = window_seconds
        self.overload_tolerance = overload_tolerance
        # The answers that tell overload from success: True for an overload.
        self._outcomes: deque[bool] = deque(maxlen=max_limit)
        self._clock = clock
        # An answer is "slow" when its pace is latency_rise times the fastest lately and
        # it took at least latency_rise_seconds: loopback jitter is no overload.
        self.latency_rise = latency_rise
        self.latency_rise_seconds = latency_rise_seconds
        self._fastest_pace: float | None = None
        self._latency_samples = 0
        self._limit = max_limit
        self._in_flight = 0
        self._finished = 0
        self._successes = 0
        self._window_until_finished = 0
        self._window_until_time = float("-inf")
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Holds no state of its own, so every call's ``async with`` can share it.
        self._slot = _Slot(self)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, limit={self._limit}, "
            f"in_flight={self._in_flight}, min={self.min_limit}, max={self.max_limit})"
        )

    @property
    def limit(self) -> int:
        """How many calls may be in flight now."""
        return self._limit

    @property
    def in_flight(self) -> int:
        """How many slots are held now."""
        return self._in_flight

    def slot(self) -> _Slot:
        """Hold a slot for the body, waiting in arrival order while the limit is reached."""
        return self._slot

    def record_overload(self) -> None:
        """Halve the limit on overload, unless the signal is a stray or echoes the last cut."""
        self._outcomes.append(True)
        if self._finished < self._window_until_finished and self._clock() < self._window_until_time:
            return
        recent = list(self._outcomes)[-self._limit :]
        if sum(recent) <= self.overload_tolerance * len(recent):
            return
        old = self._limit
        self._limit = max(self.min_limit, old // 2)
        self._successes = 0
        self._window_until_finished = self._finished + old
        self._window_until_time = self._clock() + self.window_seconds
        if self._limit != old:
            logger.info(
                "upstream %s signalled overload; concurrency limit %d -> %d",
                self.name,
                old,
                self._limit,
            )

    def record_answer(self, seconds: float, work: float = 1.0) -> None:
        """A call answered after ``seconds`` for ``work`` units: success, or overload if slow.

        The pace (seconds per unit of work, e.g. output token) is compared with the
        fastest pace seen lately. A server that queues work slows every call's pace;
        a long answer alone does not. The fastest pace drifts up a little with each
        answer, so a change of workload or server is followed within some hundreds.
        """
        pace = seconds / max(work, 1.0)
        fastest = self._fastest_pace
        self._latency_samples += 1
        slow = (
            fastest is not None
            and self._latency_samples > _LATENCY_WARMUP
            and pace > fastest * self.latency_rise
            and seconds >= self.latency_rise_seconds
        )
        self._fastest_pace = pace if fastest is None else min(pace, fastest * (1 + _PACE_DRIFT))
        if slow:
            self.record_overload()
        else:
            self.record_success()

    def record_success(self) -> None:
        """A call succeeded: one more slot for every ``limit`` successes, up to ``max_limit``."""
        self._outcomes.append(False)
        if self._limit >= self.max_limit:
            return
        self._successes += 1
        if self._successes < self._limit:
            return
        self._successes = 0
        self._limit += 1
        logger.info(
            "upstream %s is keeping up; concurrency limit %d -> %d",
            self.name,
            self._limit - 1,
            self._limit,
        )
        self._wake_waiters()

    async def _acquire(self) -> None:
        loop = self._bind_loop()
        if not self._waiters and self._in_flight < self._limit:
            self._in_flight += 1
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            # Granted a slot in the same instant as cancelled: pass it on unused.
            if waiter.done() and not waiter.cancelled():
                self._release(finished=False)
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _release(self, *, finished: bool) -> None:
        self._in_flight -= 1
        if finished:
            self._finished += 1
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        while self._waiters and self._in_flight < self._limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_flight += 1
                waiter.set_result(None)

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return loop
        previous = self._loop
        if previous is not None and not previous.is_closed() and self._in_flight:
            raise RuntimeError(f"{self!r} is in use by another event loop")
        # Slots held in a closed loop will never be released; its calls are gone.
        self._loop = loop
        self._in_flight = 0
        self._waiters.clear()
        return loop
