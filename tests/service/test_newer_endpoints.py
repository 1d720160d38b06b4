"""``/v1/responses`` and ``/v1/moderations`` lines and realtime calls pass through, and
cached input tokens are summed into the batch's usage and priced at the cached rate."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from standins.upstream import StandinUpstream
from tests.support.batches import run_batch
from tests.support.service import RunningService, start_service

# USD per million tokens; plain-model has no cached rate, so its cached tokens cost as input.
PRICES = {
    "echo-model": {"input": 1.0, "output": 3.0, "cached_input": 0.25},
    "plain-model": {"input": 2.0, "output": 4.0},
    "omni-moderation-latest": {"input": 0.0, "output": 0.0},
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[StandinUpstream]:
    with StandinUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def service(
    redis_url: str, upstream: StandinUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    data_dir = Path(tmp_path_factory.mktemp("newer-endpoints"))
    prices = data_dir / "prices.json"
    prices.write_bytes(orjson.dumps(PRICES))
    running = start_service(
        redis_url,
        data_dir,
        llm_base_url=upstream.base_url,
        llm_model="standin-model",
        price_table=str(prices),
    )
    yield running
    running.stop()


def _line(custom_id: str, url: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


LINES = [
    _line(
        "responses",
        "/v1/responses",
        {"model": "echo-model", "input": "one two three four five six", "prompt_cache_key": "k"},
    ),
    _line(
        "chat-cached",
        "/v1/chat/completions",
        {
            "model": "echo-model",
            "messages": [{"role": "user", "content": "alpha beta gamma delta"}],
            "prompt_cache_key": "k",
        },
    ),
    _line(
        "chat-no-rate",
        "/v1/chat/completions",
        {
            "model": "plain-model",
            "messages": [{"role": "user", "content": "red green blue"}],
            "prompt_cache_key": "k",
        },
    ),
    _line(
        "moderations",
        "/v1/moderations",
        {"model": "omni-moderation-latest", "input": ["fine text", "flag-me now"]},
    ),
]


def test_responses_and_moderations_lines_pass_through_with_their_usage(
    service: RunningService, upstream: StandinUpstream
) -> None:
    with service.client() as client:
        batch, outputs = run_batch(client, LINES)

    assert batch["request_counts"] == {
        "total": 4,
        "completed": 4,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
    }
    by_id = {output["custom_id"]: output["response"] for output in outputs}
    responses = by_id["responses"]["body"]
    assert responses["object"] == "response"
    assert responses["output"][0]["content"][0]["text"] == "echo: one two three four five six"
    assert responses["usage"]["input_tokens"] == 6
    flags = [result["flagged"] for result in by_id["moderations"]["body"]["results"]]
    assert flags == [False, True]
    assert {call.path for call in upstream.calls} >= {"/v1/responses", "/v1/moderations"}

    def usage(custom_id: str) -> tuple[int, int]:
        raw = by_id[custom_id]["body"]["usage"]
        return (
            raw.get("prompt_tokens", raw.get("input_tokens")),
            raw.get("completion_tokens", raw.get("output_tokens")),
        )

    (r_in, r_out), (c_in, c_out), (p_in, p_out) = map(
        usage, ("responses", "chat-cached", "chat-no-rate")
    )
    summed = batch["usage"]
    assert summed["input_tokens"] == r_in + c_in + p_in
    assert summed["output_tokens"] == r_out + c_out + p_out
    # The stand-in serves half of a prompt (rounded down) from its cache: 3 + 2 + 1.
    assert summed["input_tokens_details"]["cached_tokens"] == 6

    million, half = Decimal(1_000_000), Decimal("0.5")
    input_cost = (
        (r_in - 3 + c_in - 2) * Decimal(1) + (3 + 2) * Decimal("0.25") + p_in * Decimal(2)
    ) / million
    output_cost = ((r_out + c_out) * Decimal(3) + p_out * Decimal(4)) / million
    assert summed["input_cost"] == pytest.approx(float(input_cost * half), abs=1e-12)
    assert summed["output_cost"] == pytest.approx(float(output_cost * half), abs=1e-12)


def test_a_batch_may_be_bound_to_the_moderations_endpoint(service: RunningService) -> None:
    requests = [
        _line(f"m-{n}", "/v1/moderations", {"model": "omni-moderation-latest", "input": "hi"})
        for n in range(3)
    ]
    with service.client() as client:
        created = client.post(
            "/v1/batches", json={"endpoint": "/v1/moderations", "requests": requests}
        )
        assert created.status_code == 200, created.text
        assert created.json()["endpoint"] == "/v1/moderations"
        wrong = client.post(
            "/v1/batches",
            json={
                "endpoint": "/v1/moderations",
                "requests": [{**requests[0], "url": "/v1/responses"}],
            },
        )
    assert wrong.status_code == 400


def test_responses_and_moderations_answer_in_realtime(service: RunningService) -> None:
    with service.client() as client:
        responses = client.post(
            "/v1/responses", json={"model": "echo-model", "input": "say it back"}
        )
        moderations = client.post(
            "/v1/moderations", json={"model": "omni-moderation-latest", "input": "flag-me"}
        )
        missing = client.post("/v1/responses", json={"model": "echo-model"})
    assert responses.status_code == 200
    assert responses.json()["output"][0]["content"][0]["text"] == "echo: say it back"
    assert responses.headers["x-request-id"].startswith("req-")
    assert moderations.status_code == 200
    assert moderations.json()["results"][0]["flagged"] is True
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "input"
