"""Whole batches against an upstream that fails in every way it can, or is overloaded.

Each test starts its own stand-in upstream and its own service, so fault rates
and concurrency readings are not disturbed by other tests.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from standins.faults import FAULTS
from standins.upstream import StandinUpstream
from tests.support.batches import line, output_lines, submit, wait_finished
from tests.support.service import RunningService, start_service

NEWS = (
    "Acme Corp opened a new plant in Lyon on Monday. Chief executive Marie Curie said "
    "the site will employ 400 people. Production starts in March."
)
ATTEMPT_LIMIT = 3
# Codes a line may end with when its upstream calls failed for good.
UPSTREAM_CODES = {"upstream_rate_limited", "upstream_error", "upstream_timeout"}
SPECIFIC_CODES = UPSTREAM_CODES | {"invalid_model_output"}


def extract_line(custom_id: str, text: str) -> dict[str, Any]:
    entities = {"organization": "a company", "city": "a city name"}
    return line(custom_id, {"model": "extract", "text": text, "entities": entities})


def summarize_line(custom_id: str, text: str) -> dict[str, Any]:
    return line(custom_id, {"model": "summarize", "text": text, "max_tokens": 60})


def classify_line(custom_id: str, text: str) -> dict[str, Any]:
    labels = [
        {"name": "Acme", "rubric": "Does the text mention Acme?"},
        {"name": "weather", "rubric": "Is the text about the weather?"},
    ]
    return line(custom_id, {"model": "classify", "text": text, "labels": labels})


def mixed_lines(prefix: str, count: int) -> list[dict[str, Any]]:
    makers = (extract_line, summarize_line, classify_line)
    return [makers[n % 3](f"{prefix}-{n:04d}", f"Story {n}: {NEWS}") for n in range(count)]


def run_to_end(
    client: httpx.Client, lines: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    response = submit(client, lines)
    assert response.status_code == 200, response.text
    batch = wait_finished(client, response.json()["id"], timeout=100)
    return batch, output_lines(client, batch["id"])


# --- every fault at once -------------------------------------------------------------


@pytest.fixture(scope="module")
def faulty_upstream() -> Iterator[StandinUpstream]:
    """Each kind of fault for about 5% of calls; slow replies still beat the timeout."""
    rates = dict.fromkeys(FAULTS, 0.05)
    with StandinUpstream(
        fault_rates=rates, latency=0.01, slow_seconds=0.4, fault_retry_after=0.2, seed=11
    ) as server:
        yield server


@pytest.fixture(scope="module")
def faulty_service(
    redis_url: str, faulty_upstream: StandinUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    service = start_service(
        redis_url,
        Path(tmp_path_factory.mktemp("faulty-upstream")),
        llm_base_url=faulty_upstream.base_url,
        llm_model="standin-model",
        llm_timeout="1",
        llm_max_attempts=str(ATTEMPT_LIMIT),
        llm_backoff_base="0.05",
        llm_backoff_max="0.5",
        llm_concurrency="32",
        chunk_size="16",
    )
    yield service
    service.stop()


def test_batch_completes_with_every_line_answered_or_failed_with_a_code(
    faulty_service: RunningService, faulty_upstream: StandinUpstream
) -> None:
    # Given an upstream failing about 40% of calls in eight different ways
    lines = mixed_lines("faulty", 1000)

    # When a 1,000-line batch runs against it
    with faulty_service.client() as client:
        batch, output = run_to_end(client, lines)

    # Then the batch completes with one output line per input line, in order
    assert batch["status"] == "completed"
    assert [item["custom_id"] for item in output] == [item["custom_id"] for item in lines]
    assert len({item["custom_id"] for item in output}) == 1000
    counts = batch["request_counts"]
    succeeded = [item for item in output if item["error"] is None]
    failed = [item for item in output if item["error"] is not None]
    assert counts == {
        "total": 1000,
        "completed": len(succeeded),
        "failed": len(failed),
        "cancelled": 0,
        "expired": 0,
    }
    assert all(item["response"]["status_code"] == 200 for item in succeeded)
    # retries absorb most faults: a line fails only if every attempt did
    assert len(succeeded) >= 900, Counter(item["error"]["code"] for item in failed)

    # And every failed line says why, and how many attempts it took
    assert failed, "about 3% of lines should exhaust their attempts; the faults did not bite"
    for item in failed:
        error = item["error"]
        assert item["response"] is None
        assert error["code"] in SPECIFIC_CODES, error
        assert error["attempts"] >= 1, error
        if error["code"] in UPSTREAM_CODES:
            assert error["attempts"] == ATTEMPT_LIMIT, error
        else:
            # two answers, each taking at least one attempt, broke the schema
            assert error["attempts"] >= 2, error

    # And the faults really were served, retries included
    assert len(faulty_upstream.calls) > 1000 * 1.2


# --- overload ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def overloadable_upstream() -> Iterator[StandinUpstream]:
    """50 ms a call; a test sets how many calls it takes at once before it answers 429."""
    with StandinUpstream(latency=0.05) as server:
        yield server


@pytest.fixture(scope="module")
def overloadable_service(
    redis_url: str,
    overloadable_upstream: StandinUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningService]:
    service = start_service(
        redis_url,
        Path(tmp_path_factory.mktemp("overloadable-upstream")),
        llm_base_url=overloadable_upstream.base_url,
        llm_model="standin-model",
        llm_timeout="5",
        llm_max_attempts="8",
        llm_backoff_base="0.05",
        llm_backoff_max="0.5",
        llm_concurrency="32",
        chunk_size="32",
    )
    yield service
    service.stop()


def run_and_sample(
    service: RunningService, upstream: StandinUpstream, prefix: str
) -> tuple[dict[str, Any], list[int]]:
    """Run 300 lines; the batch and the calls in flight the upstream saw, in arrival order."""
    upstream.reset()
    with service.client() as client:
        batch, _ = run_to_end(client, mixed_lines(prefix, 300))
    return batch, [count for _, count in upstream.concurrency_samples]


def test_service_backs_off_an_overloaded_upstream_and_speeds_up_when_it_recovers(
    overloadable_service: RunningService, overloadable_upstream: StandinUpstream
) -> None:
    upstream = overloadable_upstream

    # Given an upstream that keeps up: the service uses (nearly) all of its 32 slots
    upstream.set_capacity(None)
    batch, healthy = run_and_sample(overloadable_service, upstream, "healthy")
    assert batch["request_counts"]["failed"] == 0
    assert max(healthy) >= 24

    # When the upstream can take only 8 calls at once and answers 429 to the rest
    upstream.set_capacity(8)
    batch, overloaded = run_and_sample(overloadable_service, upstream, "overloaded")
    # every call but one per answered line was refused: the stand-in's answers need no re-ask
    refused = len(overloaded) - batch["request_counts"]["completed"]

    # Then the service settles near what the upstream takes instead of hammering it
    assert batch["status"] == "completed"
    assert batch["request_counts"]["completed"] >= 290
    assert statistics.median(overloaded[len(overloaded) // 2 :]) <= 16
    # Lines sleeping between retries keep even a fixed concurrency's median down, so the
    # telling number is the share refused: 32 calls at a time against room for 8, backing
    # off only per line, see over half refused.
    assert refused < len(overloaded) * 0.35, (refused, len(overloaded))

    # When the upstream recovers, the service raises its concurrency again as calls succeed
    upstream.set_capacity(None)
    batch, recovered = run_and_sample(overloadable_service, upstream, "recovered")
    assert batch["request_counts"]["failed"] == 0
    assert max(recovered) >= 16
