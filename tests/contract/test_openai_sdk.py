"""The hosted four-step batch flow, driven by the official ``openai`` package, unchanged."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
from openai import OpenAI
from openai.types import Batch

from standins.upstream import StandinUpstream
from tests.conftest import PRICES
from tests.support.batches import line, to_jsonl
from tests.support.service import RunningService

FINAL = {"completed", "failed", "expired", "cancelled"}
TEXT = "Globex Ltd shipped 300 units to Oslo on Friday. The order was paid in full."


@pytest.fixture
def sdk(llm_service: RunningService) -> Iterator[OpenAI]:
    client = OpenAI(base_url=f"{llm_service.url}/v1", api_key=llm_service.keys[0], max_retries=0)
    yield client
    client.close()


def wait(sdk: OpenAI, batch_id: str, timeout: float = 60) -> Batch:
    deadline = time.monotonic() + timeout
    while True:
        batch = sdk.batches.retrieve(batch_id)
        if batch.status in FINAL:
            return batch
        assert time.monotonic() < deadline, f"batch still {batch.status}"
        time.sleep(0.1)


def jsonl_of(sdk: OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [orjson.loads(raw) for raw in sdk.files.content(file_id).read().splitlines() if raw]


def chat(custom_id: str, model: str, content: str) -> dict[str, Any]:
    return line(custom_id, {"model": model, "messages": [{"role": "user", "content": content}]})


def tasks_and_passthrough() -> list[dict[str, Any]]:
    return [
        line("extract-1", {"model": "extract", "text": TEXT, "entities": {"org": "a company"}}),
        line("summarize-1", {"model": "summarize", "text": TEXT}),
        line(
            "classify-1",
            {
                "model": "classify",
                "text": TEXT,
                "labels": [{"name": "shipping", "rubric": "Is it about shipping?"}],
            },
        ),
        chat("chat-default", "echo-model", "Say hello to the default upstream."),
        chat("chat-acme", "acme/echo-model", "Say hello to the named upstream."),
        chat("chat-broken", "echo-model", "This one fails. [[fail:500]]"),
    ]


def expected_cost(lines: list[dict[str, Any]], models: list[str]) -> tuple[Decimal, Decimal]:
    cost_in = cost_out = Decimal(0)
    for item, model in zip(lines, models, strict=True):
        if item["response"] is None:
            continue
        usage = item["response"]["body"]["usage"]
        price = PRICES[model]
        cost_in += Decimal(usage["prompt_tokens"]) * Decimal(str(price["input"])) / 1_000_000 / 2
        cost_out += (
            Decimal(usage.get("completion_tokens", 0))
            * Decimal(str(price["output"]))
            / 1_000_000
            / 2
        )
    return cost_in, cost_out


def test_four_step_flow_returns_output_and_error_files(sdk: OpenAI) -> None:
    lines = tasks_and_passthrough()
    uploaded = sdk.files.create(file=("requests.jsonl", to_jsonl(lines)), purpose="batch")
    created = sdk.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "nightly"},
    )
    assert created.status in {"validating", "in_progress"}
    assert created.input_file_id == uploaded.id and created.metadata == {"job": "nightly"}

    batch = wait(sdk, created.id)

    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (
        batch.request_counts.total,
        batch.request_counts.completed,
        batch.request_counts.failed,
    ) == (6, 5, 1)
    assert batch.completed_at and batch.finalizing_at and batch.in_progress_at
    output = jsonl_of(sdk, batch.output_file_id)
    errors = jsonl_of(sdk, batch.error_file_id)
    assert [item["custom_id"] for item in output] == [item["custom_id"] for item in lines[:5]]
    assert [item["custom_id"] for item in errors] == ["chat-broken"]
    for item in output:
        assert item["id"].startswith("batch_req_")
        assert item["response"]["status_code"] == 200 and item["error"] is None
        assert "request_id" in item["response"]
    assert errors[0]["response"] is None
    assert errors[0]["error"]["code"] == "upstream_error"
    assert output[3]["response"]["body"]["model"] == "echo-model"
    assert output[4]["response"]["body"]["model"] == "echo-model", "the provider prefix is stripped"

    # Usage is the upstream's numbers, summed, and priced per model at the batch discount.
    usage = batch.model_extra["usage"] if batch.usage is None else batch.usage.model_dump()
    all_lines = output[:5]
    prompt = sum(item["response"]["body"]["usage"]["prompt_tokens"] for item in all_lines)
    completion = sum(item["response"]["body"]["usage"]["completion_tokens"] for item in all_lines)
    assert (usage["input_tokens"], usage["output_tokens"]) == (prompt, completion)
    assert usage["total_tokens"] == prompt + completion
    models = ["standin-model"] * 3 + ["echo-model", "acme/echo-model"]
    cost_in, cost_out = expected_cost(all_lines, models)
    raw = sdk.batches.retrieve(batch.id).model_dump()["usage"]
    assert Decimal(str(raw["input_cost"])) == cost_in.quantize(Decimal("1e-12"))
    assert Decimal(str(raw["output_cost"])) == cost_out.quantize(Decimal("1e-12"))
    assert raw["unpriced_models"] == []


def test_unpriced_model_costs_null_and_is_named(sdk: OpenAI, llm_service: RunningService) -> None:
    uploaded = sdk.files.create(
        file=("p.jsonl", to_jsonl([chat("unpriced", "mystery-model", "Price me.")])),
        purpose="batch",
    )
    batch = wait(
        sdk,
        sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id,
    )
    usage = batch.model_dump()["usage"]
    assert usage["input_tokens"] > 0
    assert usage["input_cost"] is None and usage["total_cost"] is None
    assert usage["unpriced_models"] == ["mystery-model"]


def test_batch_mixing_tasks_chat_and_embeddings(llm_service: RunningService, sdk: OpenAI) -> None:
    lines = [
        *tasks_and_passthrough()[:4],
        line("embed-1", {"model": "embed-model", "input": "vectors please"}),
    ]
    lines[-1]["url"] = "/v1/embeddings"
    with llm_service.client() as client:
        response = client.post(
            "/v1/batches", content=to_jsonl(lines), headers={"content-type": "application/jsonl"}
        )
    assert response.status_code == 200, response.text
    batch = wait(sdk, response.json()["id"])
    output = jsonl_of(sdk, batch.output_file_id)
    assert [item["custom_id"] for item in output] == [item["custom_id"] for item in lines]
    embedding = output[-1]["response"]["body"]
    assert embedding["object"] == "list" and embedding["data"][0]["object"] == "embedding"


def test_file_with_bad_lines_ends_failed_naming_them(sdk: OpenAI) -> None:
    lines = tasks_and_passthrough()[:3]
    lines[1]["body"]["text"] = ""
    lines[2]["url"] = "/v1/embeddings"  # the batch's endpoint binds every line's url
    raw = to_jsonl(lines) + b"{not json\n" + to_jsonl([chat("bad-provider", "nowhere/model", "hi")])
    uploaded = sdk.files.create(file=("bad.jsonl", raw), purpose="batch")
    batch = sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    batch = wait(sdk, batch.id)
    assert batch.status == "failed"
    assert batch.failed_at is not None and batch.output_file_id is None
    assert batch.errors is not None and batch.errors.data is not None
    named = {(error.line, error.param) for error in batch.errors.data}
    assert (2, "body.text") in named
    assert (3, "url") in named
    assert any(error.line == 4 for error in batch.errors.data)
    assert (5, "body.model") in named


def test_all_lines_failed_is_completed_with_only_an_error_file(sdk: OpenAI) -> None:
    lines = [chat(f"down-{n}", "echo-model", f"Down {n}. [[fail:500]]") for n in range(3)]
    uploaded = sdk.files.create(file=("down.jsonl", to_jsonl(lines)), purpose="batch")
    batch = wait(
        sdk,
        sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id,
    )
    assert batch.status == "completed"
    assert batch.output_file_id is None
    errors = jsonl_of(sdk, batch.error_file_id)
    assert [item["custom_id"] for item in errors] == ["down-0", "down-1", "down-2"]


def test_list_pages_newest_first(sdk: OpenAI) -> None:
    ids = []
    for n in range(3):
        uploaded = sdk.files.create(
            file=(f"l{n}.jsonl", to_jsonl([chat(f"l-{n}", "echo-model", "hi")])), purpose="batch"
        )
        ids.append(
            sdk.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
            ).id
        )
    first = sdk.batches.list(limit=2)
    assert [b.id for b in first.data] == ids[::-1][:2]
    assert first.has_more
    second = sdk.batches.list(limit=1, after=first.data[-1].id)
    assert [b.id for b in second.data] == [ids[0]]
    every = [b.id for b in sdk.batches.list(limit=2)]
    assert every[:3] == ids[::-1]
    assert len(every) == len(set(every))


def test_cancel_mid_run_keeps_finished_lines_and_skips_the_rest(
    sdk: OpenAI, upstream: StandinUpstream
) -> None:
    marker = "cancel-run"
    lines = [chat(f"c-{n:03d}", "echo-model", f"{marker} {n} [[slow:1.5]]") for n in range(80)]
    uploaded = sdk.files.create(file=("slow.jsonl", to_jsonl(lines)), purpose="batch")
    batch = sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    # Cancel while the first wave of lines is at the upstream and the count is steady.
    deadline = time.monotonic() + 10
    seen, steady_since = 0, time.monotonic()
    while not seen or time.monotonic() - steady_since < 0.4:
        assert time.monotonic() < deadline
        count = len(upstream.calls_matching(marker))
        if count != seen:
            seen, steady_since = count, time.monotonic()
        time.sleep(0.02)
    cancelled = sdk.batches.cancel(batch.id)
    assert cancelled.status in {"cancelling", "cancelled"}
    assert cancelled.cancelling_at is not None
    calls_at_cancel = len(upstream.calls_matching(marker))

    batch = wait(sdk, batch.id)

    assert batch.status == "cancelled" and batch.cancelled_at is not None
    assert batch.request_counts is not None
    assert batch.request_counts.completed + batch.request_counts.failed == calls_at_cancel
    # The SDK keeps fields it does not know: the lines a cancel stopped are counted apart.
    assert (batch.request_counts.model_extra or {})["cancelled"] == 80 - calls_at_cancel
    assert len(upstream.calls_matching(marker)) == calls_at_cancel, "no line starts after cancel"
    errors = jsonl_of(sdk, batch.error_file_id)
    assert len(errors) == 80 - calls_at_cancel
    assert {item["error"]["code"] for item in errors} == {"batch_cancelled"}
    finished = jsonl_of(sdk, batch.output_file_id)
    assert len(finished) == calls_at_cancel


def test_expired_batch_keeps_finished_lines(sdk: OpenAI) -> None:
    lines = [
        chat("quick-1", "echo-model", "Fast answer."),
        chat("slow-1", "echo-model", "Too slow. [[slow:6]]"),
        chat("quick-2", "echo-model", "Another fast one."),
    ]
    uploaded = sdk.files.create(file=("exp.jsonl", to_jsonl(lines)), purpose="batch")
    batch = sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="2s"
    )  # type: ignore[arg-type]
    assert batch.expires_at is not None and batch.expires_at - batch.created_at == 2
    batch = wait(sdk, batch.id, timeout=20)
    assert batch.status == "expired" and batch.expired_at is not None
    assert [item["custom_id"] for item in jsonl_of(sdk, batch.output_file_id)] == [
        "quick-1",
        "quick-2",
    ]
    (expired,) = jsonl_of(sdk, batch.error_file_id)
    assert expired["custom_id"] == "slow-1" and expired["error"]["code"] == "batch_expired"
    assert batch.request_counts is not None
    counts = batch.request_counts
    assert (counts.completed, counts.failed) == (2, 0)
    assert (counts.model_extra or {}) == {"cancelled": 0, "expired": 1}


def test_other_key_cannot_see_batches_or_files(sdk: OpenAI, llm_service: RunningService) -> None:
    uploaded = sdk.files.create(
        file=("mine.jsonl", to_jsonl([chat("mine", "echo-model", "hi")])), purpose="batch"
    )
    batch = wait(
        sdk,
        sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id,
    )
    with llm_service.client(llm_service.keys[1]) as other:
        for path in (
            f"/v1/batches/{batch.id}",
            f"/v1/batches/{batch.id}/output",
            f"/v1/files/{uploaded.id}",
            f"/v1/files/{batch.output_file_id}/content",
        ):
            assert other.get(path).status_code == 404, path
        assert other.post(f"/v1/batches/{batch.id}/cancel").status_code == 404
        assert batch.id not in {b["id"] for b in other.get("/v1/batches").json()["data"]}
        body = {
            "input_file_id": uploaded.id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        }
        assert other.post("/v1/batches", json=body).status_code == 404


def test_realtime_pass_through_chat_and_embeddings(
    llm_service: RunningService, upstream: StandinUpstream
) -> None:
    with llm_service.client() as client:
        chat_reply = client.post(
            "/v1/chat/completions",
            json={
                "model": "acme/echo-model",
                "messages": [{"role": "user", "content": "rt-chat-marker"}],
            },
        )
        embed_reply = client.post(
            "/v1/embeddings", json={"model": "embed-model", "input": "rt-embed-marker"}
        )
        unknown = client.post("/v1/embeddings", json={"model": "nowhere/x", "input": "y"})
    assert chat_reply.status_code == 200
    assert chat_reply.json()["object"] == "chat.completion"
    (call,) = upstream.calls_matching("rt-chat-marker")
    assert call.body["model"] == "echo-model" and call.auth_ok
    assert embed_reply.status_code == 200 and embed_reply.json()["data"][0]["object"] == "embedding"
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "model"


def test_metadata_over_the_limits_is_rejected(sdk: OpenAI, llm_service: RunningService) -> None:
    uploaded = sdk.files.create(
        file=("m.jsonl", to_jsonl([chat("m", "echo-model", "hi")])), purpose="batch"
    )
    base = {
        "input_file_id": uploaded.id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    with llm_service.client() as client:
        too_many = client.post(
            "/v1/batches", json={**base, "metadata": {f"k{n}": "v" for n in range(17)}}
        )
        too_long = client.post("/v1/batches", json={**base, "metadata": {"k": "v" * 513}})
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "metadata"
    assert too_long.status_code == 400 and too_long.json()["error"]["param"] == "metadata.k"
