"""Realtime before batch: with the upstream's capacity full of batch lines, realtime goes next."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from standins.upstream import StandinUpstream
from tests.support.batches import line, submit, wait_finished
from tests.support.service import RunningService, start_service

CAPACITY = 4


@pytest.fixture(scope="module")
def slow_upstream() -> Iterator[StandinUpstream]:
    with StandinUpstream(latency=0.5) as server:
        yield server


@pytest.fixture(scope="module")
def capped_service(
    redis_url: str, slow_upstream: StandinUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    service = start_service(
        redis_url,
        Path(tmp_path_factory.mktemp("capped")),
        llm_base_url=slow_upstream.base_url,
        upstream_capacity=str(CAPACITY),
        llm_concurrency="32",
        llm_adaptive_concurrency="false",
        chunk_size="8",
    )
    yield service
    service.stop()


def test_realtime_is_served_before_batch_lines_queued_earlier(
    capped_service: RunningService, slow_upstream: StandinUpstream
) -> None:
    # Given a batch that fills the upstream's capacity, with many lines waiting behind it
    lines = [line(f"b-{n}", {"model": "summarize", "text": f"prio-batch {n}."}) for n in range(40)]
    with capped_service.client() as client:
        batch_id = submit(client, lines).json()["id"]
        deadline = time.monotonic() + 10
        while len(slow_upstream.calls_matching("prio-batch")) < CAPACITY:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.2)  # the rest of the batch is now queued for a slot
        assert slow_upstream.max_in_flight <= CAPACITY

        # When a realtime request arrives
        answer: list[httpx.Response] = []
        realtime = threading.Thread(
            target=lambda: answer.append(
                client.post(
                    "/v1/chat/completions", json={"model": "summarize", "text": "prio-realtime."}
                )
            )
        )
        realtime.start()
        realtime.join(timeout=30)
        wait_finished(client, batch_id)

    # Then it takes the first slot that frees up, ahead of the 36 batch lines waiting
    assert answer and answer[0].status_code == 200, answer
    (realtime_call,) = slow_upstream.calls_matching("prio-realtime")
    batch_calls = slow_upstream.calls_matching("prio-batch")
    before = [call for call in batch_calls if call.at < realtime_call.at]
    assert len(batch_calls) == 40
    assert len(before) <= 2 * CAPACITY - 1, f"{len(before)} batch calls went first"
    assert slow_upstream.max_in_flight <= CAPACITY
