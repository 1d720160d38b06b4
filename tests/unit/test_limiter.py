"""The AIMD limiter on its own: how its limit moves and how it makes callers wait."""

from __future__ import annotations

import asyncio
import logging

import pytest

from service.llm.limiter import AdaptiveLimiter


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter_with_clock(
    max_limit: int, min_limit: int = 1, overload_tolerance: float = 0.2
) -> tuple[AdaptiveLimiter, FakeClock]:
    clock = FakeClock()
    limiter = AdaptiveLimiter(
        max_limit,
        min_limit,
        window_seconds=1.0,
        overload_tolerance=overload_tolerance,
        clock=clock,
    )
    return limiter, clock


async def finish_calls(limiter: AdaptiveLimiter, count: int) -> None:
    for _ in range(count):
        async with limiter.slot():
            pass


def test_limit_starts_at_the_maximum_with_nothing_in_flight() -> None:
    limiter = AdaptiveLimiter(32)

    assert limiter.limit == 32
    assert limiter.in_flight == 0


@pytest.mark.parametrize(("max_limit", "min_limit"), [(0, 1), (4, 0), (4, 5)])
def test_inconsistent_limits_are_refused(max_limit: int, min_limit: int) -> None:
    with pytest.raises(ValueError, match="min_limit"):
        AdaptiveLimiter(max_limit, min_limit)


@pytest.mark.parametrize("tolerance", [-0.1, 1.0])
def test_a_tolerance_outside_zero_to_one_is_refused(tolerance: float) -> None:
    with pytest.raises(ValueError, match="overload_tolerance"):
        AdaptiveLimiter(4, overload_tolerance=tolerance)


def test_overload_halves_the_limit_and_logs_the_change(caplog: pytest.LogCaptureFixture) -> None:
    limiter, _ = limiter_with_clock(32)

    with caplog.at_level(logging.INFO, logger="service.llm.limiter"):
        limiter.record_overload()

    assert limiter.limit == 16
    assert "32 -> 16" in caplog.text


def test_odd_limits_are_halved_downwards() -> None:
    limiter, _ = limiter_with_clock(5)

    limiter.record_overload()

    assert limiter.limit == 2


def test_a_burst_of_overloads_cuts_the_limit_once() -> None:
    limiter, _ = limiter_with_clock(32)

    for _ in range(20):
        limiter.record_overload()

    assert limiter.limit == 16


def test_overload_cuts_again_once_the_old_limits_worth_of_calls_finished() -> None:
    limiter, _ = limiter_with_clock(32)
    limiter.record_overload()

    asyncio.run(finish_calls(limiter, 31))
    limiter.record_overload()
    assert limiter.limit == 16, "31 of the 32 calls sent under the old limit are not enough"

    asyncio.run(finish_calls(limiter, 1))
    limiter.record_overload()
    assert limiter.limit == 8


def test_overload_cuts_again_after_the_window_time_even_if_calls_hang() -> None:
    limiter, clock = limiter_with_clock(32)
    limiter.record_overload()

    clock.now += 0.99
    limiter.record_overload()
    assert limiter.limit == 16

    clock.now += 0.02
    limiter.record_overload()
    assert limiter.limit == 8


def test_a_stray_overload_among_successes_leaves_the_limit() -> None:
    limiter, _ = limiter_with_clock(10)
    for _ in range(9):
        limiter.record_success()

    limiter.record_overload()  # 1 in the last 10 answers

    assert limiter.limit == 10


def test_overloads_beyond_the_tolerated_share_cut_the_limit() -> None:
    limiter, _ = limiter_with_clock(10)
    for _ in range(8):
        limiter.record_success()

    limiter.record_overload()
    limiter.record_overload()
    assert limiter.limit == 10, "2 in the last 10 answers is just tolerated"

    limiter.record_overload()
    assert limiter.limit == 5


def test_without_tolerance_every_overload_outside_a_window_cuts() -> None:
    limiter, _ = limiter_with_clock(10, overload_tolerance=0.0)
    for _ in range(100):
        limiter.record_success()

    limiter.record_overload()

    assert limiter.limit == 5


def test_the_limit_never_falls_below_the_minimum() -> None:
    limiter, clock = limiter_with_clock(32, min_limit=3)

    for _ in range(10):
        limiter.record_overload()
        clock.now += 2

    assert limiter.limit == 3


def test_successes_add_one_slot_per_limit_successes() -> None:
    limiter, _ = limiter_with_clock(32)
    limiter.record_overload()  # 16

    for _ in range(15):
        limiter.record_success()
    assert limiter.limit == 16

    limiter.record_success()
    assert limiter.limit == 17

    for _ in range(17):
        limiter.record_success()
    assert limiter.limit == 18


def test_successes_grow_the_limit_back_to_the_maximum_and_no_further() -> None:
    limiter, _ = limiter_with_clock(8)
    limiter.record_overload()  # 4

    for _ in range(1000):
        limiter.record_success()

    assert limiter.limit == 8


def test_an_overload_forgets_the_successes_counted_towards_an_increase() -> None:
    limiter, clock = limiter_with_clock(32, overload_tolerance=0.0)
    limiter.record_overload()  # 16
    for _ in range(15):
        limiter.record_success()

    clock.now += 2
    limiter.record_overload()  # 8
    for _ in range(7):
        limiter.record_success()

    assert limiter.limit == 8


def test_callers_wait_while_the_limit_is_reached() -> None:
    async def scenario() -> None:
        limiter = AdaptiveLimiter(2)
        release = asyncio.Event()
        peak = 0

        async def call() -> None:
            nonlocal peak
            async with limiter.slot():
                peak = max(peak, limiter.in_flight)
                await release.wait()

        tasks = [asyncio.create_task(call()) for _ in range(5)]
        await asyncio.sleep(0.01)
        assert limiter.in_flight == 2
        assert sum(task.done() for task in tasks) == 0

        release.set()
        await asyncio.gather(*tasks)
        assert peak == 2
        assert limiter.in_flight == 0

    asyncio.run(scenario())


def test_a_lowered_limit_admits_no_one_until_enough_calls_finished() -> None:
    async def scenario() -> None:
        limiter = AdaptiveLimiter(4)
        holders = [asyncio.Event() for _ in range(4)]

        async def hold(done: asyncio.Event) -> None:
            async with limiter.slot():
                await done.wait()

        tasks = [asyncio.create_task(hold(done)) for done in holders]
        await asyncio.sleep(0.01)
        limiter.record_overload()  # 4 -> 2 with 4 in flight
        newcomer = asyncio.create_task(finish_calls(limiter, 1))

        for done in holders[:2]:
            done.set()
        await asyncio.sleep(0.01)
        assert not newcomer.done(), "2 still in flight is the whole new limit"

        holders[2].set()
        await asyncio.wait_for(newcomer, 1)
        holders[3].set()
        await asyncio.gather(*tasks)

    asyncio.run(scenario())


def test_a_raised_limit_lets_a_waiting_caller_in() -> None:
    async def scenario() -> None:
        limiter = AdaptiveLimiter(2)
        limiter.record_overload()  # 1
        release = asyncio.Event()

        async def hold() -> None:
            async with limiter.slot():
                await release.wait()

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0.01)
        waiter = asyncio.create_task(finish_calls(limiter, 1))
        await asyncio.sleep(0.01)
        assert not waiter.done()

        limiter.record_success()  # 1 success at limit 1 -> 2
        await asyncio.wait_for(waiter, 1)
        release.set()
        await holder

    asyncio.run(scenario())


def test_a_cancelled_waiter_leaves_no_slot_behind() -> None:
    async def scenario() -> None:
        limiter = AdaptiveLimiter(1)
        release = asyncio.Event()

        async def hold() -> None:
            async with limiter.slot():
                await release.wait()

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0.01)
        waiter = asyncio.create_task(finish_calls(limiter, 1))
        await asyncio.sleep(0.01)
        waiter.cancel()
        release.set()
        await holder
        with pytest.raises(asyncio.CancelledError):
            await waiter

        assert limiter.in_flight == 0
        await asyncio.wait_for(finish_calls(limiter, 2), 1)

    asyncio.run(scenario())


def test_a_waiter_cancelled_as_it_is_granted_passes_the_slot_on() -> None:
    async def scenario() -> None:
        limiter = AdaptiveLimiter(1)
        async with limiter.slot():
            granted_then_cancelled = asyncio.create_task(finish_calls(limiter, 1))
            next_in_line = asyncio.create_task(finish_calls(limiter, 1))
            await asyncio.sleep(0.01)
        # Leaving the slot granted it to the first waiter, which has not run yet.
        granted_then_cancelled.cancel()

        await asyncio.wait_for(next_in_line, 1)
        assert granted_then_cancelled.cancelled()
        assert limiter.in_flight == 0

    asyncio.run(scenario())


def test_one_limiter_serves_successive_event_loops() -> None:
    limiter = AdaptiveLimiter(2)

    asyncio.run(finish_calls(limiter, 3))
    asyncio.run(finish_calls(limiter, 3))

    assert limiter.in_flight == 0
