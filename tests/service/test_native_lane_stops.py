"""Our cancel and our expiry reach the upstream batch; what it finished is kept."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from standins.upstream import StandinUpstream
from tests.support.batches import output_lines, wait_finished
from tests.support.native_pair import NativePair, native_pair, task_lines

LINES = 40


@pytest.fixture(scope="module")
def slow_pair(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativePair]:
    """The provider calls its stand-in two at a time, each call taking half a second."""
    with StandinUpstream(latency=0.5) as upstream:
        path = Path(tmp_path_factory.mktemp("native-stops"))
        with native_pair(
            redis_url, path, upstream, provider_settings={"llm_concurrency": "2"}
        ) as pair:
            yield pair


def upstream_batch_running(client: httpx.Client, batch_id: str) -> str:
    """The upstream batch's id once it exists and has finished a line."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        batches = client.get(f"/v1/batches/{batch_id}").json().get("provider_batches") or []
        if batches and batches[0]["request_counts"].get("completed", 0) > 0:
            return str(batches[0]["id"])
        time.sleep(0.1)
    raise AssertionError("the upstream batch never started")


def kept_and_stopped(client: httpx.Client, batch_id: str) -> tuple[int, set[str]]:
    output = output_lines(client, batch_id)
    assert len(output) == LINES
    succeeded = sum(1 for item in output if item["error"] is None)
    return succeeded, {item["error"]["code"] for item in output if item["error"]}


def test_cancel_cancels_the_upstream_batch_and_keeps_its_finished_lines(
    slow_pair: NativePair,
) -> None:
    with slow_pair.client.client() as client, slow_pair.provider.client() as provider:
        lines = task_lines(LINES, tag="cancel")
        batch: dict[str, Any] = client.post(
            "/v1/batches", json={"requests": lines, "lane": "native"}
        ).json()
        upstream_id = upstream_batch_running(client, batch["id"])
        assert client.post(f"/v1/batches/{batch['id']}/cancel").status_code == 200
        done = wait_finished(client, batch["id"], timeout=60)
        assert done["status"] == "cancelled"
        upstream = wait_finished(provider, upstream_id, timeout=60)
        assert upstream["status"] == "cancelled"
        succeeded, codes = kept_and_stopped(client, batch["id"])
        assert succeeded == upstream["request_counts"]["completed"] > 0
        assert succeeded < LINES
        assert codes == {"batch_cancelled"}
        assert done["provider_batches"][0]["status"] == "cancelled"


def test_expiry_cancels_the_upstream_batch_and_keeps_its_finished_lines(
    slow_pair: NativePair,
) -> None:
    with slow_pair.client.client() as client, slow_pair.provider.client() as provider:
        lines = task_lines(LINES, tag="expire")
        batch: dict[str, Any] = client.post(
            "/v1/batches", json={"requests": lines, "lane": "native", "completion_window": "5s"}
        ).json()
        upstream_id = upstream_batch_running(client, batch["id"])
        done = wait_finished(client, batch["id"], timeout=60)
        assert done["status"] == "expired"
        upstream = wait_finished(provider, upstream_id, timeout=60)
        assert upstream["status"] == "cancelled"
        assert upstream["completion_window"] == "24h"
        succeeded, codes = kept_and_stopped(client, batch["id"])
        assert succeeded == upstream["request_counts"]["completed"] > 0
        assert succeeded < LINES
        assert codes == {"batch_expired"}


@pytest.mark.parametrize("fallback", [None, "direct"])
def test_lines_of_an_upstream_batch_that_failed_fail_or_run_directly(
    redis_url: str, tmp_path: Path, fallback: str | None
) -> None:
    # The provider takes lines of at most 4,500 bytes: an upstream batch holding a longer
    # one fails as a whole, as the hosted API fails a batch with a bad input file.
    long_text = "The harbour office logged another late ferry. " * 130
    lines = task_lines(3, tag="failed")
    lines[0]["body"] = {"model": "summarize", "text": long_text}
    with (
        StandinUpstream() as upstream,
        native_pair(
            redis_url,
            tmp_path,
            upstream,
            provider_settings={"max_line_bytes": "4500"},
            **({"llm_batch_fallback": fallback} if fallback else {}),
        ) as pair,
        pair.client.client() as client,
        pair.provider.client() as provider,
    ):
        batch = client.post("/v1/batches", json={"requests": lines, "lane": "native"}).json()
        done = wait_finished(client, batch["id"], timeout=120)
        upstream_batch = provider.get(f"/v1/batches/{done['provider_batch_id']}").json()
        output = output_lines(client, batch["id"])
    assert upstream_batch["status"] == "failed"
    assert done["provider_batches"][0]["status"] == "failed"
    assert done["status"] == "completed"
    codes = [item["error"]["code"] if item["error"] else None for item in output]
    if fallback is None:
        assert codes == ["upstream_batch_failed"] * 3
    else:
        # Run directly: the short lines succeed; the provider refuses the long one again.
        assert codes == ["upstream_rejected", None, None]
