"""Fixtures for the real-server tests: llama-server, a recording proxy, textbatch on both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.real_server.llama_server import LlamaServer, RecordingProxy, start_llama_server
from tests.support.service import RunningService, start_service

# The model served; textbatch sends it as the model name, llama-server serves one model anyway.
MODEL_NAME = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-server with SmolLM2-135M on a free loopback port; fails when it is not built."""
    server = start_llama_server(Path(tmp_path_factory.mktemp("llama-server")))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llama_proxy(llama_server: LlamaServer) -> Iterator[RecordingProxy]:
    with RecordingProxy(llama_server.base_url) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def real_service(
    redis_url: str, llama_proxy: RecordingProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """textbatch pointed at the real server through the proxy, with the llama.cpp profile."""
    data_dir = Path(tmp_path_factory.mktemp("real-service"))
    service = start_service(
        redis_url,
        data_dir,
        log_dir=data_dir,
        llm_base_url=llama_proxy.base_url,
        llm_model=MODEL_NAME,
        llm_profile="llamacpp",
        # One slot: more calls in flight would only queue inside the server. A loaded
        # machine (two test runs at once) makes a call slow, never a failure.
        llm_concurrency="1",
        llm_timeout="300",
        llm_max_attempts="2",
        llm_backoff_base="0.1",
        llm_backoff_max="0.5",
    )
    yield service
    service.stop()
