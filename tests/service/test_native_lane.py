"""The native lane against a second textbatch: the same results as the direct lane, batch-priced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from standins.upstream import StandinUpstream
from tests.conftest import UPSTREAM_KEY
from tests.support.batches import output_lines, wait_finished
from tests.support.native_pair import NativePair, native_pair, task_lines


def create(client: httpx.Client, lines: list[dict[str, Any]], lane: str) -> dict[str, Any]:
    response = client.post("/v1/batches", json={"requests": lines, "lane": lane})
    assert response.status_code == 200, response.text
    batch: dict[str, Any] = response.json()
    return batch


def results_by_id(output: list[dict[str, Any]]) -> dict[str, Any]:
    """What must match between lanes: per custom_id, the error code or the answer's content."""
    found: dict[str, Any] = {}
    for item in output:
        error = item["error"]
        body = item["response"]["body"] if item["response"] else None
        found[item["custom_id"]] = (
            error["code"] if error else None,
            body["choices"][0]["message"]["content"] if body else None,
        )
    return found


@pytest.fixture(scope="module")
def pair(
    redis_url: str, upstream: StandinUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    path = Path(tmp_path_factory.mktemp("native"))
    with native_pair(redis_url, path, upstream, UPSTREAM_KEY, llm_batch_max_lines="50") as p:
        yield p


def test_native_lane_gives_the_direct_lanes_results_at_the_batch_price(pair: NativePair) -> None:
    lines = task_lines(12)
    with pair.client.client() as client, pair.provider.client() as provider:
        direct = create(client, lines, "direct")
        native = create(client, lines, "native")
        assert native["lane"] == "native"
        native_done = wait_finished(client, native["id"], timeout=120)
        direct_done = wait_finished(client, direct["id"], timeout=120)
        assert native_done["status"] == "completed"
        assert native_done["request_counts"] == {
            "total": 12,
            "completed": 12,
            "failed": 0,
            "cancelled": 0,
            "expired": 0,
        }
        assert results_by_id(output_lines(client, native["id"])) == results_by_id(
            output_lines(client, direct["id"])
        )
        # The upstream batch is the provider's own batch object.
        assert native_done["provider"] == "default"
        upstream_id = native_done["provider_batch_id"]
        upstream_batch = provider.get(f"/v1/batches/{upstream_id}").json()
        assert upstream_batch["status"] == "completed"
        assert upstream_batch["request_counts"]["total"] == 12
        assert native_done["provider_batches"][0]["status"] == "completed"
        # Priced at the batch price: half the table's 2 and 8 USD per million tokens.
        usage = native_done["usage"]
        assert usage["input_tokens"] > 0
        expected = (usage["input_tokens"] * 2.0 + usage["output_tokens"] * 8.0) / 1e6 * 0.5
        assert usage["total_cost"] == pytest.approx(expected)
        assert usage["input_tokens"] == upstream_batch["usage"]["input_tokens"]
        assert direct_done.get("provider_batch_id") is None


def test_unknown_lane_is_refused_naming_the_param(pair: NativePair) -> None:
    with pair.client.client() as client:
        response = client.post("/v1/batches", json={"requests": task_lines(1), "lane": "fast"})
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "lane"
        jsonl = client.post(
            "/v1/batches?lane=slow",
            content=b'{"custom_id":"a","method":"POST","url":"/v1/chat/completions",'
            b'"body":{"model":"summarize","text":"Hi there."}}\n',
            headers={"content-type": "application/jsonl"},
        )
        assert jsonl.status_code == 400
        assert jsonl.json()["error"]["param"] == "lane"


def test_lines_over_the_upstream_limit_are_split_into_several_upstream_batches(
    pair: NativePair,
) -> None:
    with pair.client.client() as client, pair.provider.client() as provider:
        batch = create(client, task_lines(120, tag="split"), "native")
        done = wait_finished(client, batch["id"], timeout=180)
        assert done["request_counts"] == {
            "total": 120,
            "completed": 120,
            "failed": 0,
            "cancelled": 0,
            "expired": 0,
        }
        upstream = done["provider_batches"]
        assert [entry["request_counts"]["total"] for entry in upstream] == [50, 50, 20]
        assert done["provider_batch_id"] is None
        assert done["provider"] == "default"
        for entry in upstream:
            assert provider.get(f"/v1/batches/{entry['id']}").json()["status"] == "completed"
        ids = [item["custom_id"] for item in output_lines(client, batch["id"])]
        assert ids == [f"split-{n:04d}" for n in range(120)]


def test_a_batch_asking_for_no_lane_takes_the_upstreams_default(pair: NativePair) -> None:
    with pair.client.client() as client:
        response = client.post("/v1/batches", json={"requests": task_lines(4, tag="default")})
        batch = response.json()
        assert batch["lane"] == "native"
        done = wait_finished(client, batch["id"], timeout=120)
        assert done["request_counts"]["completed"] == 4
        assert done["provider_batch_id"] is not None


def test_an_unusable_native_answer_is_asked_again_directly_then_fails_as_direct(
    pair: NativePair,
) -> None:
    body = {"model": "summarize", "text": "Always the wrong shape [[schema]] for note 77."}
    lines = [{"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions", "body": body}]
    with pair.client.client() as client, pair.provider.client() as provider:
        direct = create(client, lines, "direct")
        native = create(client, lines, "native")
        done = wait_finished(client, native["id"], timeout=120)
        wait_finished(client, direct["id"], timeout=120)
        assert results_by_id(output_lines(client, native["id"])) == results_by_id(
            output_lines(client, direct["id"])
        )
        assert results_by_id(output_lines(client, native["id"]))["bad"][0] == (
            "invalid_model_output"
        )
        # The re-ask went to the provider as a direct call: its one batch held one line.
        upstream = provider.get(f"/v1/batches/{done['provider_batch_id']}").json()
        assert upstream["request_counts"]["total"] == 1
    reasks = [
        call for call in pair.upstream.calls_matching("note 77") if "could not be used" in call.text
    ]
    assert len(reasks) == 2  # one per lane


def test_lines_for_two_upstreams_make_one_upstream_batch_each(pair: NativePair) -> None:
    lines = task_lines(4, tag="two")
    peer = {"model": "peer/standin-model", "messages": [{"role": "user", "content": "Hi."}]}
    lines.append(
        {"custom_id": "peer", "method": "POST", "url": "/v1/chat/completions", "body": peer}
    )
    with pair.client.client() as client, pair.provider.client(pair.provider.keys[1]) as second:
        done = wait_finished(client, create(client, lines, "native")["id"], timeout=120)
        assert done["request_counts"] == {
            "total": 5,
            "completed": 5,
            "failed": 0,
            "cancelled": 0,
            "expired": 0,
        }
        assert done["provider"] == "mixed"
        assert done["provider_batch_id"] is None
        upstream = done["provider_batches"]
        assert [(entry["provider"], entry["request_counts"]["total"]) for entry in upstream] == [
            ("default", 4),
            ("peer", 1),
        ]
        # The peer's batch was made with the peer entry's own key.
        assert second.get(f"/v1/batches/{upstream[1]['id']}").status_code == 200
        assert second.get(f"/v1/batches/{upstream[0]['id']}").status_code == 404
