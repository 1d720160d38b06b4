"""Shared fixtures: a real Redis, a stand-in upstream on loopback, textbatch processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from standins.upstream import StandinUpstream
from tests.support.redis_for_tests import real_redis
from tests.support.service import RunningService, start_service

UPSTREAM_KEY = "sk-upstream-secret-for-tests"
# USD per million tokens, chosen so sums are easy to check by hand.
PRICES = {
    "standin-model": {"input": 2.0, "output": 8.0},
    "echo-model": {"input": 1.0, "output": 3.0},
    "acme/echo-model": {"input": 4.0, "output": 12.0},
    "embed-model": {"input": 0.5, "output": 0.0},
}


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with real_redis() as url:
        yield url


@pytest.fixture(scope="session")
def upstream() -> Iterator[StandinUpstream]:
    with StandinUpstream(api_key=UPSTREAM_KEY) as server:
        yield server


@pytest.fixture(scope="session")
def llm_service(
    redis_url: str, upstream: StandinUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """textbatch pointed at the stand-in upstream, with quick retries.

    The stand-in is also the named upstream ``acme``; a price table covers its models.
    """
    data_dir = Path(tmp_path_factory.mktemp("llm-service"))
    price_table = data_dir / "prices.json"
    price_table.write_bytes(orjson.dumps(PRICES))
    upstreams = {"acme": {"base_url": upstream.base_url, "api_key": UPSTREAM_KEY}}
    service = start_service(
        redis_url,
        data_dir,
        upstreams=orjson.dumps(upstreams).decode(),
        price_table=str(price_table),
        llm_base_url=upstream.base_url,
        llm_api_key=UPSTREAM_KEY,
        llm_model="standin-model",
        llm_max_attempts="3",
        llm_backoff_base="0.05",
        llm_backoff_max="0.2",
        llm_timeout="5",
        chunk_size="4",
    )
    yield service
    service.stop()


@pytest.fixture(scope="session")
def offline_service(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """textbatch with no LLM configured: the built-in offline engine answers."""
    service = start_service(redis_url, Path(tmp_path_factory.mktemp("offline-service")))
    yield service
    service.stop()
