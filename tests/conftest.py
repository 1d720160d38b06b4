"""Shared fixtures: a real Redis, a stand-in upstream on loopback, textbatch processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.standin_upstream import StandinUpstream
from tests.support.redis_for_tests import real_redis
from tests.support.service import RunningService, start_service

UPSTREAM_KEY = "sk-upstream-secret-for-tests"


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
    """textbatch pointed at the stand-in upstream, with quick retries."""
    service = start_service(
        redis_url,
        Path(tmp_path_factory.mktemp("llm-service")),
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
