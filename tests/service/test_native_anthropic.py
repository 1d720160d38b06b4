"""The native lane through Anthropic's Message Batches API: the direct lane's results, once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from standins.anthropic_batches import StandinAnthropicBatches
from standins.upstream import StandinUpstream
from tests.conftest import UPSTREAM_KEY
from tests.support.batches import output_lines, wait_finished
from tests.support.native_pair import MODEL, task_lines
from tests.support.redis_for_tests import real_redis
from tests.support.service import RunningService, start_service

ANTHROPIC_KEY = "sk-ant-for-native-tests"
COMMON = {"llm_model": MODEL, "chunk_size": "8", "llm_max_attempts": "2"}


def _task_lines(count: int, tag: str) -> list[dict[str, Any]]:
    """The native pair's lines of the three tasks, without its pass-through lines."""
    lines = [item for item in task_lines(count * 2, tag) if item["body"]["model"] != MODEL]
    return lines[:count]


def _domain_results(output: list[dict[str, Any]]) -> dict[str, Any]:
    """Per custom_id: the error code, or the task's result (the message content)."""
    return {
        item["custom_id"]: (
            item["error"]["code"] if item["error"] else None,
            item["response"]["body"]["choices"][0]["message"]["content"]
            if item["response"]
            else None,
        )
        for item in output
    }


@pytest.fixture(scope="module")
def anthropic() -> Iterator[StandinAnthropicBatches]:
    with StandinAnthropicBatches(api_key=ANTHROPIC_KEY, processing_seconds=0.5) as server:
        yield server


@pytest.fixture(scope="module")
def native_service(
    anthropic: StandinAnthropicBatches, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    path = Path(tmp_path_factory.mktemp("native-anthropic"))
    with real_redis() as redis_url:
        service = start_service(
            redis_url,
            path / "data",
            llm_base_url=anthropic.base_url,
            llm_api_key=ANTHROPIC_KEY,
            llm_batch="native",
            llm_api="anthropic",
            # Sends the task's JSON schema, which the dialect turns into a forced tool.
            llm_profile="generic",
            native_poll_max="0.5",
            **COMMON,
        )
        try:
            yield service
        finally:
            service.stop()


@pytest.fixture(scope="module")
def direct_service(
    redis_url: str, upstream: StandinUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    path = Path(tmp_path_factory.mktemp("direct-reference"))
    service = start_service(
        redis_url,
        path / "data",
        llm_base_url=upstream.base_url,
        llm_api_key=UPSTREAM_KEY,
        llm_profile="generic",
        **COMMON,
    )
    try:
        yield service
    finally:
        service.stop()


def _run(client: httpx.Client, lines: list[dict[str, Any]], lane: str) -> dict[str, Any]:
    response = client.post("/v1/batches", json={"requests": lines, "lane": lane})
    assert response.status_code == 200, response.text
    done: dict[str, Any] = wait_finished(client, response.json()["id"], timeout=120)
    return done


def test_the_three_tasks_through_message_batches_match_the_direct_lane(
    anthropic: StandinAnthropicBatches,
    native_service: RunningService,
    direct_service: RunningService,
) -> None:
    lines = _task_lines(9, "anth")
    before = set(anthropic.batch_ids)
    with native_service.client() as native, direct_service.client() as direct:
        native_done = _run(native, lines, "native")
        direct_done = _run(direct, lines, "direct")
        assert native_done["status"] == "completed"
        assert native_done["request_counts"]["completed"] == 9
        assert _domain_results(output_lines(native, native_done["id"])) == _domain_results(
            output_lines(direct, direct_done["id"])
        )
    created = set(anthropic.batch_ids) - before
    assert created == {native_done["provider_batch_id"]}  # one upstream batch, the one shown
    (upstream_id,) = created
    assert len(anthropic.requests_of(upstream_id)) == 9
    assert native_done["provider_batches"][0]["status"] == "completed"
    assert native_done["usage"]["input_tokens"] > 0


def _upstream(anthropic: StandinAnthropicBatches, batch_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{anthropic.base_url}/messages/batches/{batch_id}",
        headers={"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"},
    )
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


def test_a_cancel_reaches_the_message_batch_and_keeps_what_finished(
    anthropic: StandinAnthropicBatches, native_service: RunningService
) -> None:
    lines = _task_lines(3, "cancel")
    # The stand-in keeps a [[pending]] request processing until the batch is cancelled.
    lines[2]["body"]["text"] += " [[pending]]"
    before = set(anthropic.batch_ids)
    with native_service.client() as client:
        batch = client.post("/v1/batches", json={"requests": lines, "lane": "native"}).json()
        deadline = time.monotonic() + 60
        while not set(anthropic.batch_ids) - before and time.monotonic() < deadline:
            time.sleep(0.1)
        (upstream_id,) = set(anthropic.batch_ids) - before
        # Cancel once the two plain lines are done upstream: those must be kept.
        while _upstream(anthropic, upstream_id)["request_counts"]["succeeded"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert client.post(f"/v1/batches/{batch['id']}/cancel").status_code == 200
        done = wait_finished(client, batch["id"], timeout=60)
        upstream = _upstream(anthropic, upstream_id)
        assert upstream["cancel_initiated_at"] is not None
        assert done["status"] == "cancelled"
        codes = {item["custom_id"]: item["error"] for item in output_lines(client, batch["id"])}
        first, second, pending = (item["custom_id"] for item in lines)
        assert codes[pending] is not None and codes[pending]["code"] == "batch_cancelled"
        assert codes[first] is None and codes[second] is None
