"""The Redis-held upstream capacity: slots, realtime-first hand-over, leases, cancelled waiters."""

from __future__ import annotations

import asyncio
import secrets
import time

import redis

from service.llm.shared_capacity import Priority, SharedCapacity
from service.store import keys


def capacity(redis_url: str, upstream: str, priority: Priority, size: int = 2) -> SharedCapacity:
    return SharedCapacity(redis_url, upstream, size, priority, lease_seconds=30)


async def hold(gate: SharedCapacity, order: list[str], name: str, release: asyncio.Event) -> None:
    async with gate.slot():
        order.append(name)
        await release.wait()


def test_waiters_get_freed_slots_realtime_first(redis_url: str) -> None:
    upstream = f"t-{secrets.token_hex(4)}"

    async def scenario() -> list[str]:
        batch = capacity(redis_url, upstream, Priority.BATCH)
        realtime = capacity(redis_url, upstream, Priority.REALTIME)
        order: list[str] = []
        first_done, rest_done = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(hold(batch, order, "first-0", first_done))
        second = asyncio.create_task(hold(batch, order, "first-1", rest_done))
        await asyncio.sleep(0.1)
        waiting = [
            asyncio.create_task(hold(batch, order, f"batch-{n}", rest_done)) for n in range(3)
        ]
        await asyncio.sleep(0.1)
        late = asyncio.create_task(hold(realtime, order, "realtime", rest_done))
        await asyncio.sleep(0.1)
        assert sorted(order) == ["first-0", "first-1"], "capacity is full: everyone else waits"
        first_done.set()  # one slot frees up
        await asyncio.sleep(0.3)
        assert order[2:] == ["realtime"], "the realtime call, queued last, takes it"
        rest_done.set()
        await asyncio.gather(first, second, *waiting, late)
        await batch.aclose()
        await realtime.aclose()
        return order

    order = asyncio.run(scenario())
    assert order[2] == "realtime"
    assert sorted(order[3:]) == ["batch-0", "batch-1", "batch-2"]


def test_expired_lease_of_a_dead_holder_frees_its_slot(redis_url: str) -> None:
    upstream = f"t-{secrets.token_hex(4)}"
    client = redis.Redis.from_url(redis_url)
    try:
        past = int(time.time() * 1000) - 1
        client.zadd(keys.capacity_holders(upstream), {"dead|0": past, "dead|1": past})
    finally:
        client.close()

    async def scenario() -> None:
        gate = capacity(redis_url, upstream, Priority.BATCH)
        async with asyncio.timeout(5), gate.slot():
            pass
        await gate.aclose()

    asyncio.run(scenario())


def test_a_waiter_that_gives_up_leaves_no_slot_taken(redis_url: str) -> None:
    upstream = f"t-{secrets.token_hex(4)}"

    async def scenario() -> None:
        gate = capacity(redis_url, upstream, Priority.BATCH, size=1)
        release = asyncio.Event()
        order: list[str] = []
        holder = asyncio.create_task(hold(gate, order, "holder", release))
        await asyncio.sleep(0.1)
        quitter = asyncio.create_task(hold(gate, order, "quitter", release))
        await asyncio.sleep(0.1)
        quitter.cancel()
        release.set()
        await holder
        async with asyncio.timeout(5), gate.slot():
            order.append("next")
        assert order == ["holder", "next"]
        await gate.aclose()

    asyncio.run(scenario())
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.zcard(keys.capacity_holders(upstream)) == 0
        assert client.zcard(keys.capacity_waiters(upstream)) == 0
    finally:
        client.close()


def test_a_finished_slot_is_kept_for_the_next_call_then_given_back_when_idle(
    redis_url: str,
) -> None:
    upstream = f"t-{secrets.token_hex(4)}"
    client = redis.Redis.from_url(redis_url)

    async def scenario() -> tuple[int, int]:
        gate = capacity(redis_url, upstream, Priority.BATCH)
        async with gate.slot():
            pass
        kept = client.zcard(keys.capacity_holders(upstream))
        await asyncio.sleep(0.3)  # several keeper ticks with no call
        after_idle = client.zcard(keys.capacity_holders(upstream))
        await gate.aclose()
        return kept, after_idle

    try:
        kept, after_idle = asyncio.run(scenario())
    finally:
        client.close()
    assert kept == 1, "the slot stays with the process for its next call"
    assert after_idle == 0, "an idle slot goes back to Redis"


def test_a_busy_batch_process_yields_its_slot_to_a_realtime_waiter(redis_url: str) -> None:
    upstream = f"t-{secrets.token_hex(4)}"

    async def scenario() -> tuple[float, int]:
        batch = capacity(redis_url, upstream, Priority.BATCH, size=1)
        realtime = capacity(redis_url, upstream, Priority.REALTIME, size=1)
        stop = asyncio.Event()
        batch_calls = 0

        async def busy_batch() -> None:
            # Calls back to back: the process always has a caller ready for its slot.
            nonlocal batch_calls
            while not stop.is_set():
                async with batch.slot():
                    batch_calls += 1
                    await asyncio.sleep(0.01)

        busy = asyncio.create_task(busy_batch())
        await asyncio.sleep(0.2)
        started = time.monotonic()
        async with asyncio.timeout(5), realtime.slot():
            waited = time.monotonic() - started
        stop.set()
        await busy
        await batch.aclose()
        await realtime.aclose()
        return waited, batch_calls

    waited, batch_calls = asyncio.run(scenario())
    assert batch_calls > 5
    assert waited < 1.0, f"the realtime call waited {waited:.2f}s behind a busy batch process"
