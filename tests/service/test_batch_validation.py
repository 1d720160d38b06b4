"""Submission faults: every bad line is named in a 400 and nothing is stored or queued."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from tests.support.batches import line, submit, to_jsonl
from tests.support.service import RunningService, start_service

GOOD_BODY = {"model": "summarize", "text": "The quarterly report shows growth."}


def good(custom_id: str) -> dict[str, Any]:
    return line(custom_id, dict(GOOD_BODY))


def key_count(redis_url: str, pattern: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return sum(1 for _ in client.scan_iter(match=pattern, count=1000))
    finally:
        client.close()


def batch_count(redis_url: str) -> int:
    return key_count(redis_url, "textbatch:batch:*")


def staging_count(redis_url: str) -> int:
    return key_count(redis_url, "textbatch:staging:*")


def assert_rejected(response: httpx.Response, line_no: int, param: str | None) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_batch"
    matching = [fault for fault in error["lines"] if fault["line"] == line_no]
    assert matching, error
    if param is not None:
        assert any(fault["param"] == param for fault in matching), matching
    return error


BAD_LINES: list[tuple[str, Any, str | None]] = [
    ("unknown provider", line("x", {"model": "nope/translate", "text": "hi"}), "body.model"),
    ("pass-through without messages", line("x", {"model": "gpt-x", "text": "hi"}), "body.messages"),
    ("missing text", line("x", {"model": "summarize"}), "body.text"),
    ("empty text", line("x", {"model": "summarize", "text": ""}), "body.text"),
    ("text not a string", line("x", {"model": "summarize", "text": 42}), "body.text"),
    ("unknown body field", line("x", {**GOOD_BODY, "temprature": 0.2}), "body.temprature"),
    ("method not POST", {**good("x"), "method": "GET"}, "method"),
    ("wrong url", {**good("x"), "url": "/v1/embeddings"}, "url"),
    ("document field", line("x", {**GOOD_BODY, "document": "JVBERi0x"}), "body.document"),
    (
        "document mime",
        line("x", {**GOOD_BODY, "document_mime_type": "application/pdf"}),
        "body.document_mime_type",
    ),
    ("no labels", line("x", {"model": "classify", "text": "t", "labels": []}), "body.labels"),
    ("no entities", line("x", {"model": "extract", "text": "t", "entities": {}}), "body.entities"),
    ("bad max_tokens", line("x", {**GOOD_BODY, "max_tokens": 0}), "body.max_tokens"),
    ("custom_id missing", {k: v for k, v in good("x").items() if k != "custom_id"}, "custom_id"),
    ("custom_id wrong type", {**good("x"), "custom_id": 7}, "custom_id"),
    ("not an object", [1, 2, 3], None),
]


@pytest.mark.parametrize(("name", "bad", "param"), BAD_LINES, ids=[case[0] for case in BAD_LINES])
def test_bad_line_is_named_and_nothing_is_stored(
    llm_service: RunningService, redis_url: str, name: str, bad: Any, param: str | None
) -> None:
    before = batch_count(redis_url)
    staged_before = staging_count(redis_url)
    body = (
        to_jsonl([good("first"), good("second")])
        + orjson.dumps(bad)
        + b"\n"
        + to_jsonl([good("last")])
    )
    with llm_service.client() as client:
        response = client.post(
            "/v1/batches", content=body, headers={"content-type": "application/jsonl"}
        )
    assert_rejected(response, 3, param)
    assert batch_count(redis_url) == before
    assert staging_count(redis_url) == staged_before


def test_documents_error_says_to_pass_text(llm_service: RunningService) -> None:
    with llm_service.client() as client:
        response = submit(client, [line("doc", {**GOOD_BODY, "document": "JVBERi0x"})])
    message = response.json()["error"]["lines"][0]["message"]
    assert "text" in message and "not supported" in message


def test_malformed_json_line_is_named(llm_service: RunningService) -> None:
    body = to_jsonl([good("a")]) + b'{"custom_id": "b", "method": \n' + to_jsonl([good("c")])
    with llm_service.client() as client:
        response = client.post(
            "/v1/batches", content=body, headers={"content-type": "application/jsonl"}
        )
    assert_rejected(response, 2, None)


def test_non_utf8_bytes_are_named(llm_service: RunningService) -> None:
    bad = (
        b'{"custom_id": "b", "method": "POST", "url": "/v1/chat/completions", '
        b'"body": {"model": "summarize", "text": "caf\xe9"}}\n'
    )
    with llm_service.client() as client:
        response = client.post(
            "/v1/batches",
            content=to_jsonl([good("a")]) + bad,
            headers={"content-type": "application/jsonl"},
        )
    error = assert_rejected(response, 2, None)
    assert "UTF-8" in error["lines"][0]["message"]


def test_duplicate_custom_id_is_named(llm_service: RunningService) -> None:
    with llm_service.client() as client:
        response = submit(client, [good("same"), good("other"), good("same")])
    error = assert_rejected(response, 3, "custom_id")
    assert error["lines"][0]["custom_id"] == "same"


def test_a_repeat_far_into_a_large_batch_is_named(redis_url: str, tmp_path: Path) -> None:
    # Past the first 65,536 ids the submission keeps digests, not the ids themselves.
    count = 70_000
    service = start_service(redis_url, tmp_path, workers=0, max_lines=str(count + 10))
    try:
        batches_before = batch_count(redis_url)
        lines = [good(f"line-{n}") for n in range(count)] + [good("line-3")]
        with service.client() as client:
            response = submit(client, lines)
            error = assert_rejected(response, count + 1, "custom_id")
            assert error["lines"][0]["custom_id"] == "line-3"
            assert len(error["lines"]) == 1
            assert batch_count(redis_url) == batches_before
            # Without the repeat the same lines are one batch.
            accepted = submit(client, lines[:count])
            assert accepted.status_code == 200, accepted.text
            assert accepted.json()["request_counts"]["total"] == count
    finally:
        service.stop()


def test_every_faulty_line_is_listed_up_to_100(llm_service: RunningService) -> None:
    lines = [line(f"bad-{n}", {"model": "nope/x", "text": "x"}) for n in range(130)]
    with llm_service.client() as client:
        response = submit(client, lines)
    error = response.json()["error"]
    assert response.status_code == 400
    assert len(error["lines"]) == 100
    assert error["more_lines"] == 30
    assert "30 more" in error["message"]
    assert [fault["line"] for fault in error["lines"]] == list(range(1, 101))


@pytest.mark.parametrize("body", [b"", b"\n\n", b"\r\n"])
def test_blank_body_is_rejected(llm_service: RunningService, body: bytes) -> None:
    with llm_service.client() as client:
        response = client.post(
            "/v1/batches", content=body, headers={"content-type": "application/jsonl"}
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "empty_batch"


def test_unsupported_content_type_is_415(llm_service: RunningService) -> None:
    with llm_service.client() as client:
        response = client.post(
            "/v1/batches", content=to_jsonl([good("a")]), headers={"content-type": "text/csv"}
        )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_json_submission_faults_name_the_request(llm_service: RunningService) -> None:
    payload = {"requests": [good("a"), line("b", {"model": "classify", "text": "t"})]}
    with llm_service.client() as client:
        response = client.post(
            "/v1/batches",
            content=orjson.dumps(payload),
            headers={"content-type": "application/json"},
        )
    assert_rejected(response, 2, "body.labels")


def test_missing_key_is_401(llm_service: RunningService) -> None:
    response = httpx.post(
        f"{llm_service.url}/v1/batches",
        content=to_jsonl([good("a")]),
        headers={"content-type": "application/jsonl"},
    )
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"


@pytest.mark.parametrize("path", ["/v1/batches/batch_x", "/v1/batches/batch_x/output"])
def test_unknown_key_is_401_everywhere(llm_service: RunningService, path: str) -> None:
    response = httpx.get(f"{llm_service.url}{path}", headers={"x-api-key": "not-a-key"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_bearer_key_is_accepted(llm_service: RunningService) -> None:
    with httpx.Client(
        base_url=llm_service.url, headers={"authorization": f"Bearer {llm_service.keys[0]}"}
    ) as client:
        response = submit(client, [good("bearer")])
    assert response.status_code == 200, response.text


def test_other_key_gets_404_for_a_batch(llm_service: RunningService) -> None:
    with llm_service.client() as owner:
        batch_id = submit(owner, [good("mine")]).json()["id"]
    with llm_service.client(llm_service.keys[1]) as other:
        for path in (f"/v1/batches/{batch_id}", f"/v1/batches/{batch_id}/output"):
            response = other.get(path)
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "not_found"


def test_health_and_readiness_need_no_key(llm_service: RunningService) -> None:
    assert httpx.get(f"{llm_service.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{llm_service.url}/readyz").json()
    assert ready == {
        "status": "ready",
        "redis": "ok",
        "llm_backend": "openai-compatible",
        "storage": "ok",
        "upstream": "ok",
        "message": None,
    }
