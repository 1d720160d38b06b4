"""Restart Redis mid-batch: 503s while it is down, and the batch completes with nothing lost.

The upstream is fine throughout, so no line may fail: Redis being away is the
service's problem, and the lines it held up run once it is back.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from service.redis_server import EmbeddedValkey
from standins.upstream import StandinUpstream
from tests.chaos.conftest import wait_for_count
from tests.support.batches import line, output_lines, submit, wait_finished
from tests.support.service import free_port, start_service

LINES = 1000


@pytest.mark.timeout(240)
@pytest.mark.parametrize("how", ["shutdown", "kill -9"])
def test_batch_survives_a_redis_restart(
    steady_upstream: StandinUpstream, tmp_path: Path, how: str
) -> None:
    # Given textbatch on its own Valkey with the append-only file on, mid-way through a batch
    port = free_port()
    valkey = EmbeddedValkey(tmp_path, port=port)
    redis_url = f"{valkey.start()}/0"
    service = start_service(
        redis_url,
        tmp_path,
        llm_base_url=steady_upstream.base_url,
        llm_concurrency="8",
        chunk_size="8",
        dispatch_grace="3",
        sweep_interval="1",
    )
    try:
        with service.client() as client:
            lines = [
                line(f"r-{n:04d}", {"model": "summarize", "text": f"Item {n} shipped."})
                for n in range(LINES)
            ]
            batch_id = submit(client, lines).json()["id"]
            wait_for_count(client, batch_id, LINES // 5)

            # When Redis goes away
            if how == "kill -9":
                assert valkey.pid is not None
                os.kill(valkey.pid, signal.SIGKILL)
            valkey.stop()

            # Then the API answers 503 batch_router_unavailable, never a 500
            for response in (
                client.get(f"/v1/batches/{batch_id}"),
                submit(client, lines[:1]),
                client.get("/v1/batches"),
            ):
                assert response.status_code == 503, response.text
                assert response.json()["error"]["code"] == "batch_router_unavailable"
            time.sleep(2)

            # And when it comes back the batch completes with nothing lost or doubled
            valkey = EmbeddedValkey(tmp_path, port=port)
            valkey.start()
            batch = wait_finished(client, batch_id, timeout=120)
            output = output_lines(client, batch_id)
    finally:
        service.stop()
        valkey.stop()

    assert batch["status"] == "completed"
    counts = batch["request_counts"]
    assert counts["total"] == LINES and counts["completed"] + counts["failed"] == LINES
    assert len(output) == LINES
    assert Counter(item["custom_id"] for item in output) == Counter(
        item["custom_id"] for item in lines
    )
    failed = [item["error"] for item in output if item["error"] is not None]
    assert failed == [], f"{len(failed)} lines failed, e.g. {failed[:3]}"
    assert counts["failed"] == 0
