"""kill -9 the worker polling an upstream batch: its successor polls the same one, no second."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from standins.upstream import StandinUpstream
from tests.support.batches import output_lines, wait_finished
from tests.support.native_pair import native_pair, task_lines

LINES = 30
HEARTBEAT_MS = 3000


@pytest.mark.timeout(240)
def test_killed_native_worker_resumes_the_same_upstream_batch(
    redis_url: str, tmp_path: Path
) -> None:
    with (
        StandinUpstream(latency=0.3) as upstream,
        native_pair(
            redis_url,
            tmp_path,
            upstream,
            provider_settings={"llm_concurrency": "2"},
            heartbeat_timeout_ms=str(HEARTBEAT_MS),
        ) as pair,
        pair.client.client() as client,
        pair.provider.client() as provider,
    ):
        lines = task_lines(LINES, tag="kill")
        batch: dict[str, Any] = client.post(
            "/v1/batches", json={"requests": lines, "lane": "native"}
        ).json()
        # When the worker dies while the upstream batch runs
        deadline = time.monotonic() + 60
        while not client.get(f"/v1/batches/{batch['id']}").json().get("provider_batches"):
            assert time.monotonic() < deadline, "no upstream batch was made"
            time.sleep(0.05)
        pair.client.workers[0].send_signal(signal.SIGKILL)
        pair.client.workers[0].wait()
        pair.client.start_worker()
        done = wait_finished(client, batch["id"], timeout=180)
        output = output_lines(client, batch["id"])
        upstream_batches = provider.get("/v1/batches", params={"limit": 100}).json()["data"]

    # Then exactly one upstream batch holds the lines, and every line came back once
    ours = [
        item
        for item in upstream_batches
        if (item.get("metadata") or {}).get("textbatch_tag", "").startswith(batch["id"])
    ]
    assert len(ours) == 1
    assert ours[0]["id"] == done["provider_batch_id"]
    assert ours[0]["request_counts"] == {
        "total": LINES,
        "completed": LINES,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
    }
    assert done["status"] == "completed"
    assert done["request_counts"] == {
        "total": LINES,
        "completed": LINES,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
    }
    assert Counter(item["custom_id"] for item in output) == Counter(
        f"kill-{n:04d}" for n in range(LINES)
    )
