"""Zero-config use: with no LLM configured, the offline engine answers the samples end to end."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.batches import content_of, output_lines, wait_finished
from tests.support.service import RunningService

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.jsonl"))


@pytest.mark.parametrize("sample", SAMPLES, ids=[path.name for path in SAMPLES])
def test_offline_engine_answers_every_sample_line(
    offline_service: RunningService, sample: Path
) -> None:
    raw = sample.read_bytes()
    inputs = [orjson.loads(item) for item in raw.splitlines() if item.strip()]
    with offline_service.client() as client:
        response = client.post(
            "/v1/batches", content=raw, headers={"content-type": "application/jsonl"}
        )
        assert response.status_code == 200, response.text
        batch = wait_finished(client, response.json()["id"])
        output = output_lines(client, batch["id"])

    assert batch["request_counts"] == {
        "total": len(inputs),
        "completed": len(inputs),
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
    }
    for source, item in zip(inputs, output, strict=True):
        assert item["custom_id"] == source["custom_id"]
        assert item["response"]["body"]["model"] == "offline"
        result = content_of(item)
        body = source["body"]
        if body["model"] == "extract":
            for entity in result["entities"]:
                assert entity["type"] in body["entities"]
                assert body["text"][entity["start"] : entity["end"]] == entity["text"]
        elif body["model"] == "classify":
            assert [label["name"] for label in result["labels"]] == [
                label["name"] for label in body["labels"]
            ]
        else:
            assert result["summary"].strip()


def test_readiness_reports_the_offline_backend(offline_service: RunningService) -> None:
    assert httpx.get(f"{offline_service.url}/readyz").json()["llm_backend"] == "offline"
