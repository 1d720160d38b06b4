"""Batch limits: over one, a clear 413 (or a failed batch in the file flow) that says the limit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from tests.support.batches import line, submit, to_jsonl
from tests.support.service import RunningService, start_service

BODY = {"model": "summarize", "text": "A short text."}


@pytest.fixture(scope="module")
def small_service(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    service = start_service(
        redis_url, Path(tmp_path_factory.mktemp("small")), max_lines="3", max_body_bytes="4000"
    )
    yield service
    service.stop()


def test_too_many_lines_is_413_naming_the_limit(small_service: RunningService) -> None:
    with small_service.client() as client:
        response = submit(client, [line(f"n-{n}", BODY) for n in range(4)])
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "payload_too_large" and "3 lines" in error["message"]


def test_too_large_body_is_413_naming_the_limit(small_service: RunningService) -> None:
    big = line("big", {"model": "summarize", "text": "x" * 5000})
    with small_service.client() as client:
        response = submit(client, [big])
    assert response.status_code == 413
    assert "4000 bytes" in response.json()["error"]["message"]


def test_file_over_the_line_limit_makes_a_failed_batch(small_service: RunningService) -> None:
    sdk = OpenAI(base_url=f"{small_service.url}/v1", api_key=small_service.keys[0], max_retries=0)
    try:
        uploaded = sdk.files.create(
            file=("many.jsonl", to_jsonl([line(f"n-{n}", BODY) for n in range(5)])), purpose="batch"
        )
        batch = sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    finally:
        sdk.close()
    assert batch.status == "failed"
    assert batch.errors is not None and batch.errors.data
    assert "3 lines" in (batch.errors.data[0].message or "")
