"""Retrying only what failed, and one output merging a batch with its retries."""

from __future__ import annotations

import secrets
from typing import Any

import orjson
import redis

from tests.support.batches import line, run_batch, stored_input_lines, submit, wait_finished
from tests.support.service import RunningService

NEWS = "Acme Corp opened a new plant in Lyon on Monday. Production starts in March."


def summarize(custom_id: str, directive: str = "") -> dict[str, Any]:
    # A fresh marker per line: a stand-in's counted fault counts calls per text.
    text = f"{NEWS} {directive} {custom_id}-{secrets.token_hex(4)}"
    return line(custom_id, {"model": "summarize", "text": text, "max_tokens": 40})


def output_bytes(client: Any, batch_id: str, **params: Any) -> bytes:
    response = client.get(f"/v1/batches/{batch_id}/output", params=params)
    assert response.status_code == 200, response.text
    content: bytes = response.content
    return content


def by_custom_id(content: bytes) -> dict[str, bytes]:
    return {orjson.loads(raw)["custom_id"]: raw for raw in content.splitlines()}


def retry(client: Any, batch_id: str, body: Any = None, **headers: str) -> Any:
    return client.post(f"/v1/batches/{batch_id}/retry", json=body, headers=headers)


def test_retry_is_a_batch_of_exactly_the_failed_lines_as_they_were_sent(
    llm_service: RunningService, redis_url: str
) -> None:
    # Given a batch where one line fails once and one always fails
    lines = [
        summarize("ok-1"),
        summarize("flaky-2", "[[fail:400:1]]"),
        summarize("ok-3"),
        summarize("dead-4", "[[fail:400]]"),
        summarize("ok-5"),
    ]
    with llm_service.client() as client:
        original, _ = run_batch(client, lines)
        assert original["request_counts"]["failed"] == 2

        # When its failed lines are retried
        response = retry(client, original["id"])
        assert response.status_code == 200, response.text
        again = response.json()
        done = wait_finished(client, again["id"])
        listed = client.get(f"/v1/batches/{original['id']}").json()

    # Then the retry holds those two lines, stored byte for byte as the original's
    assert again["request_counts"]["total"] == 2
    assert again["metadata"] == {"retry_of": original["id"]}
    assert listed["retried_by"] == [again["id"]]
    stored = redis.Redis.from_url(redis_url)
    first = stored_input_lines(stored, original["id"])
    assert stored_input_lines(stored, again["id"]) == [first[1], first[3]]
    assert done["status"] == "completed"
    assert done["request_counts"]["completed"] == 1 and done["request_counts"]["failed"] == 1


def test_merged_output_has_each_line_once_with_its_newest_result(
    llm_service: RunningService,
) -> None:
    lines = [
        summarize("m-1"),
        summarize("m-2", "[[fail:400:1]]"),
        summarize("m-3", "[[fail:400]]"),
        summarize("m-4"),
    ]
    with llm_service.client() as client:
        original, _ = run_batch(client, lines)
        retry_id = retry(client, original["id"]).json()["id"]
        wait_finished(client, retry_id)
        first = output_bytes(client, original["id"])
        second = by_custom_id(output_bytes(client, retry_id))
        merged = output_bytes(client, original["id"], merged_with=retry_id)

    # Every line of the original, in its order, the retried ones replaced by the retry's.
    expected = b"".join(
        second.get(orjson.loads(raw)["custom_id"], raw) + b"\n" for raw in first.splitlines()
    )
    assert merged == expected
    results = [orjson.loads(raw) for raw in merged.splitlines()]
    assert [item["custom_id"] for item in results] == ["m-1", "m-2", "m-3", "m-4"]
    assert results[1]["error"] is None, "the retry's success replaces the first failure"
    assert results[2]["error"]["code"] == "upstream_rejected"


def test_retry_chooses_failures_by_error_code(llm_service: RunningService) -> None:
    lines = [summarize("c-rejected", "[[fail:400]]"), summarize("c-server", "[[fail:500]]")]
    with llm_service.client() as client:
        original, _ = run_batch(client, lines)
        chosen = retry(client, original["id"], {"codes": ["upstream_error"]})
        none_left = retry(client, original["id"], {"codes": ["upstream_timeout"]})
        unknown = retry(client, original["id"], {"codes": ["upstream_error"], "why": "x"})
        retry_id = chosen.json()["id"]
        done = wait_finished(client, retry_id)
        output = [orjson.loads(raw) for raw in output_bytes(client, retry_id).splitlines()]

    assert chosen.status_code == 200, chosen.text
    assert done["request_counts"]["total"] == 1
    assert [item["custom_id"] for item in output] == ["c-server"]
    assert none_left.status_code == 409
    assert none_left.json()["error"]["code"] == "nothing_to_retry"
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "why"


def test_retry_is_refused_while_running_for_another_key_and_when_all_succeeded(
    llm_service: RunningService,
) -> None:
    with llm_service.client() as client, llm_service.client(llm_service.keys[1]) as other:
        running = submit(client, [summarize("r-slow", "[[slow:1.5]]")]).json()
        early = retry(client, running["id"])
        foreign = retry(other, running["id"])
        wait_finished(client, running["id"])
        all_good = retry(client, running["id"])
    assert early.status_code == 409 and early.json()["error"]["code"] == "batch_not_finished"
    assert foreign.status_code == 404
    assert all_good.status_code == 409 and all_good.json()["error"]["code"] == "nothing_to_retry"


def test_retry_with_the_same_idempotency_key_makes_one_batch(llm_service: RunningService) -> None:
    with llm_service.client() as client:
        original, _ = run_batch(client, [summarize("i-1", "[[fail:400]]")])
        key = f"retry-{secrets.token_hex(4)}"
        first = retry(client, original["id"], None, **{"Idempotency-Key": key})
        second = retry(client, original["id"], None, **{"Idempotency-Key": key})
        other_body = retry(
            client, original["id"], {"codes": ["upstream_rejected"]}, **{"Idempotency-Key": key}
        )
        listed = client.get(f"/v1/batches/{original['id']}").json()
    assert first.status_code == 200 and second.json()["id"] == first.json()["id"]
    assert other_body.status_code == 409
    assert other_body.json()["error"]["code"] == "idempotency_key_reused"
    assert listed["retried_by"] == [first.json()["id"]]


def test_a_chain_of_retries_merges_to_the_newest_result(llm_service: RunningService) -> None:
    # Given a line that fails in the original and in its retry, and succeeds in the retry's retry
    lines = [summarize("chain-1"), summarize("chain-2", "[[fail:400:2]]")]
    with llm_service.client() as client:
        original, _ = run_batch(client, lines)
        first_retry = retry(client, original["id"]).json()["id"]
        wait_finished(client, first_retry)
        second_retry = retry(client, first_retry).json()["id"]
        wait_finished(client, second_retry)
        # Named in any order, the newer retry wins; a retry whose parent is missing is refused.
        merged = output_bytes(
            client, original["id"], merged_with=[second_retry, first_retry]
        ).splitlines()
        orphan = client.get(
            f"/v1/batches/{original['id']}/output", params={"merged_with": second_retry}
        )
        newest = by_custom_id(output_bytes(client, second_retry))

    assert [orjson.loads(raw)["custom_id"] for raw in merged] == ["chain-1", "chain-2"]
    assert merged[1] == newest["chain-2"]
    assert orjson.loads(merged[1])["error"] is None
    assert orphan.status_code == 400 and orphan.json()["error"]["param"] == "merged_with"
