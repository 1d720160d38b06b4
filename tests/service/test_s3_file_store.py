"""Uploaded files in an S3-compatible object store (moto's server, over real HTTP)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.support.batches import line, to_jsonl, wait_finished
from tests.support.redis_for_tests import real_redis
from tests.support.service import RunningService, free_port, start_service

BUCKET = "textbatch-files"
PREFIX = "uploads"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test-access-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret-key",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    return s3


def _objects(s3: Any) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/")
    return [item["Key"] for item in listed.get("Contents", [])]


@pytest.fixture
def service(s3_endpoint: str, bucket: Any, tmp_path: Path) -> Iterator[RunningService]:
    # A Redis of its own: every process on one Redis must keep files in the same store,
    # and the session's services keep theirs in Redis.
    with real_redis() as redis_url:
        running = start_service(
            redis_url,
            tmp_path,
            file_store=f"s3://{BUCKET}/{PREFIX}",
            s3_endpoint_url=s3_endpoint,
            s3_region="us-east-1",
            retention="3s",
            sweep_interval="0.5",
        )
        yield running
        running.stop()


def test_files_kept_in_s3_are_streamed_used_deleted_and_expired(
    service: RunningService, bucket: Any
) -> None:
    with service.client() as client:
        # Given a file of three multipart-upload parts, uploaded
        content = hashlib.sha256(b"s3").digest() * (20 * 1024 * 1024 // 32)
        uploaded = client.post(
            "/v1/files",
            files={"file": ("big.bin", content, "application/octet-stream")},
            data={"purpose": "batch"},
        )
        assert uploaded.status_code == 200, uploaded.text
        big = uploaded.json()["id"]

        # Then it is one object in the bucket, and it is served byte for byte
        assert _objects(bucket) == [f"{PREFIX}/{big}"]
        served = client.get(f"/v1/files/{big}/content")
        assert served.status_code == 200
        assert hashlib.sha256(served.content).digest() == hashlib.sha256(content).digest()

        # And a delete removes the object before it answers
        assert client.delete(f"/v1/files/{big}").status_code == 200
        assert _objects(bucket) == []

        # And a batch made from a file in the bucket runs
        lines = [line(f"s3-{n}", {"model": "summarize", "text": f"Row {n}."}) for n in range(3)]
        small = client.post(
            "/v1/files",
            files={"file": ("rows.jsonl", to_jsonl(lines), "application/jsonl")},
            data={"purpose": "batch"},
        ).json()["id"]
        body = {"input_file_id": small, "endpoint": "/v1/chat/completions"}
        batch = wait_finished(client, client.post("/v1/batches", json=body).json()["id"])
        assert batch["request_counts"]["completed"] == 3

        # And once its retention has passed, the reaper removes the object too
        deadline = time.monotonic() + 30
        while _objects(bucket) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _objects(bucket) == []
        assert client.get(f"/v1/files/{small}").status_code == 404
