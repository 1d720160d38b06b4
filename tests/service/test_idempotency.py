"""Idempotent submission: a retried POST /v1/batches with the same key returns the same batch."""

from __future__ import annotations

import hashlib
import secrets
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import redis

from service.auth import hash_key
from service.intake.idempotency import RequestDigest
from service.store import keys
from tests.support.batches import line, to_jsonl
from tests.support.service import RunningService

JSONL = {"content-type": "application/jsonl"}


def body(tag: str) -> bytes:
    return to_jsonl(
        [line(f"{tag}-{n}", {"model": "summarize", "text": f"Text {n}."}) for n in range(3)]
    )


def post(client: httpx.Client, content: bytes, key: str) -> httpx.Response:
    return client.post("/v1/batches", content=content, headers={**JSONL, "Idempotency-Key": key})


def listed_ids(client: httpx.Client) -> list[str]:
    return [b["id"] for b in client.get("/v1/batches", params={"limit": 100}).json()["data"]]


def test_retry_with_the_same_key_returns_the_same_batch(llm_service: RunningService) -> None:
    key = secrets.token_hex(8)
    with llm_service.client() as client:
        first = post(client, body("idem"), key)
        again = post(client, body("idem"), key)
        assert first.status_code == again.status_code == 200
        assert first.json()["id"] == again.json()["id"]
        assert listed_ids(client).count(first.json()["id"]) == 1


def test_same_key_with_a_different_body_is_409(llm_service: RunningService) -> None:
    key = secrets.token_hex(8)
    with llm_service.client() as client:
        assert post(client, body("one"), key).status_code == 200
        before = listed_ids(client)
        conflict = post(client, body("two"), key)
        assert listed_ids(client) == before
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_key_reused"


def test_concurrent_retries_make_one_batch(llm_service: RunningService) -> None:
    key = secrets.token_hex(8)
    content = body("race")

    def attempt(_: int) -> str:
        with llm_service.client() as client:
            response = post(client, content, key)
            assert response.status_code == 200, response.text
            return str(response.json()["id"])

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = set(pool.map(attempt, range(4)))
    assert len(ids) == 1


def test_file_flow_is_idempotent_too(llm_service: RunningService) -> None:
    key = secrets.token_hex(8)
    with llm_service.client() as client:
        upload = client.post(
            "/v1/files", files={"file": ("in.jsonl", body("file"))}, data={"purpose": "batch"}
        ).json()
        request = {
            "input_file_id": upload["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        }
        first = client.post("/v1/batches", json=request, headers={"Idempotency-Key": key})
        again = client.post("/v1/batches", json=request, headers={"Idempotency-Key": key})
    assert first.json()["id"] == again.json()["id"]


def test_keys_are_scoped_to_the_api_key(llm_service: RunningService) -> None:
    key = secrets.token_hex(8)
    with llm_service.client() as mine, llm_service.client(llm_service.keys[1]) as theirs:
        a = post(mine, body("scope"), key).json()["id"]
        b = post(theirs, body("scope"), key).json()["id"]
    assert a != b


def test_a_claim_whose_batch_never_appeared_is_taken_over(
    llm_service: RunningService, redis_url: str
) -> None:
    """The API died after claiming the key and before storing the batch: a retry proceeds."""
    key = secrets.token_hex(8)
    content = body("stale")
    digest = RequestDigest("application/jsonl", "", "")
    digest.update(content)
    owner = hash_key(llm_service.keys[0]).hex()[:32]
    stale = {"batch_id": "batch_" + "0" * 32, "digest": digest.hexdigest()}
    client_redis = redis.Redis.from_url(redis_url)
    try:
        key_digest = hashlib.sha256(key.encode()).hexdigest()
        client_redis.set(keys.idempotency(owner, key_digest), orjson.dumps(stale))
    finally:
        client_redis.close()
    with llm_service.client() as client:
        response = post(client, content, key)
        assert response.status_code == 200, response.text
        assert response.json()["id"] != stale["batch_id"]
        assert post(client, content, key).json()["id"] == response.json()["id"]
