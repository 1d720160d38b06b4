"""A worker holds more lines than call slots; calls stay bounded and a cancel still stops them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from standins.upstream import StandinUpstream
from tests.support.batches import line, submit, wait_finished
from tests.support.service import RunningService, start_service

CALL_SLOTS = 4
LINES = 30


@pytest.fixture(scope="module")
def slow_upstream() -> Iterator[StandinUpstream]:
    with StandinUpstream(latency=0.6) as server:
        yield server


@pytest.fixture(scope="module")
def narrow_service(
    redis_url: str, slow_upstream: StandinUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    service = start_service(
        redis_url,
        Path(tmp_path_factory.mktemp("narrow")),
        llm_base_url=slow_upstream.base_url,
        llm_concurrency=str(CALL_SLOTS),
        chunk_size=str(LINES),
    )
    yield service
    service.stop()


def test_lines_waiting_for_a_call_slot_start_no_call_after_a_cancel(
    narrow_service: RunningService, slow_upstream: StandinUpstream
) -> None:
    # Given a batch whose first lines fill every call slot, more lines in hand behind them
    lines = [line(f"s-{n}", {"model": "summarize", "text": f"slots {n}."}) for n in range(LINES)]
    with narrow_service.client() as client:
        batch_id = submit(client, lines).json()["id"]
        deadline = time.monotonic() + 10
        while len(slow_upstream.calls_matching("slots")) < CALL_SLOTS:
            assert time.monotonic() < deadline
            time.sleep(0.01)

        # When the batch is cancelled while those calls are out
        assert client.post(f"/v1/batches/{batch_id}/cancel").status_code == 200
        calls_at_cancel = len(slow_upstream.calls_matching("slots"))
        batch = wait_finished(client, batch_id)

    # Then the lines that waited for a slot made no call, and calls never passed the bound
    assert batch["status"] == "cancelled"
    assert len(slow_upstream.calls_matching("slots")) == calls_at_cancel
    assert batch["request_counts"]["completed"] == calls_at_cancel
    assert batch["request_counts"]["cancelled"] == LINES - calls_at_cancel
    assert batch["request_counts"]["failed"] == 0
    assert slow_upstream.max_in_flight <= CALL_SLOTS
