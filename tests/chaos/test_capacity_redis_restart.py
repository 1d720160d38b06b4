"""A batch line taking an upstream slot waits out Redis being away; a realtime call does not."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis import exceptions as redis_errors

from service.llm.shared_capacity import Priority, SharedCapacity
from service.redis_server import EmbeddedValkey
from tests.support.service import free_port


def _capacity(url: str, priority: Priority) -> SharedCapacity:
    return SharedCapacity(url, "restart-test", 4, priority, lease_seconds=30)


@pytest.mark.timeout(60)
def test_a_batch_slot_waits_for_redis_to_come_back(tmp_path: Path) -> None:
    port = free_port()
    valkey = EmbeddedValkey(tmp_path, port=port)
    url = f"redis://127.0.0.1:{port}/0"

    async def scenario() -> str:
        gate = _capacity(url, Priority.BATCH)
        calls: list[str] = []

        async def call() -> None:
            async with gate.slot():
                calls.append("ran")

        # Given Redis is down when a line asks for its slot
        line = asyncio.create_task(call())
        await asyncio.sleep(1.0)
        # Then the line has not failed; it waits
        assert not line.done(), line
        # When Redis comes back, the line gets its slot and runs
        await asyncio.to_thread(valkey.start)
        await asyncio.wait_for(line, timeout=20)
        await gate.aclose()
        return calls[0]

    try:
        assert asyncio.run(scenario()) == "ran"
    finally:
        valkey.stop()


def test_a_realtime_slot_fails_at_once_while_redis_is_down() -> None:
    """The realtime caller is waiting on an HTTP answer: it gets a 503, not a hang."""

    async def scenario() -> None:
        gate = _capacity(f"redis://127.0.0.1:{free_port()}/0", Priority.REALTIME)
        try:
            async with gate.slot():
                pass
        finally:
            await gate.aclose()

    with pytest.raises(redis_errors.ConnectionError):
        asyncio.run(scenario())
