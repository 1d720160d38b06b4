"""Configured task limits hold end to end: long texts when allowed, max_tokens within the cap."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.batches import content_of, line, run_batch, submit
from tests.support.service import RunningService, start_service

TEXT_LIMIT = 1_500_000
OUTPUT_CAP = 300


@pytest.fixture(scope="module")
def roomy_service(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    service = start_service(
        redis_url,
        Path(tmp_path_factory.mktemp("roomy")),
        max_text_chars=str(TEXT_LIMIT),
        max_line_bytes=str(4 * 1024 * 1024),
        llm_max_output_tokens=str(OUTPUT_CAP),
    )
    yield service
    service.stop()


def classify(custom_id: str, text: str) -> dict[str, Any]:
    labels = [{"name": "refund", "rubric": "Does the customer ask for a refund?"}]
    return line(custom_id, {"model": "classify", "text": text, "labels": labels})


def test_a_text_over_a_million_characters_runs_when_the_limit_allows_it(
    roomy_service: RunningService,
) -> None:
    text = "Please refund my order. " * 50_000  # 1,200,000 characters
    assert 1_000_000 < len(text) <= TEXT_LIMIT
    with roomy_service.client() as client:
        batch, output = run_batch(client, [classify("long", text)])
        over = submit(client, [classify("over", "x" * (TEXT_LIMIT + 1))])
    assert batch["request_counts"]["completed"] == 1, output
    assert content_of(output[0]) == {"labels": [{"name": "refund", "match": True}]}
    assert over.status_code == 400
    fault = over.json()["error"]["lines"][0]
    assert fault["param"] == "body.text" and f"the limit is {TEXT_LIMIT}" in fault["message"]


def test_a_max_tokens_above_the_output_cap_is_refused_naming_the_line(
    roomy_service: RunningService,
) -> None:
    good = line("fits", {"model": "summarize", "text": "One. Two.", "max_tokens": OUTPUT_CAP})
    bad = line("over", {"model": "summarize", "text": "One. Two.", "max_tokens": OUTPUT_CAP + 1})
    with roomy_service.client() as client:
        refused = submit(client, [good, bad])
        realtime = client.post("/v1/chat/completions", json=bad["body"])
        accepted = submit(client, [good])
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "invalid_batch"
    (fault,) = error["lines"]
    assert (fault["line"], fault["custom_id"], fault["param"]) == (2, "over", "body.max_tokens")
    assert str(OUTPUT_CAP) in fault["message"]
    assert realtime.status_code == 400 and str(OUTPUT_CAP) in realtime.json()["error"]["message"]
    assert accepted.status_code == 200
