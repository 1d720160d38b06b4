"""Two API processes on one Redis serve the same files and batches, whichever gets a request."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson

from tests.support.batches import line, to_jsonl, wait_finished
from tests.support.service import start_service


def test_a_file_uploaded_through_one_api_is_read_and_used_through_the_other(
    redis_url: str, tmp_path: Path
) -> None:
    # Given two API processes on one Redis, with the same keys and queue, and one worker
    first = start_service(redis_url, tmp_path / "a")
    second = start_service(
        redis_url,
        tmp_path / "b",
        workers=0,
        api_keys=first.env["TEXTBATCH_API_KEYS"],
        queue_name=first.env["TEXTBATCH_QUEUE_NAME"],
    )
    key = first.keys[0]
    # Over two chunks of the file store, so the content is written and read across chunks
    text = "A row of words for the summary. " * 15_000
    lines = [line(f"r-{n}", {"model": "summarize", "text": f"{n}. {text}"}) for n in range(5)]
    content = to_jsonl(lines)
    assert len(content) > 2 * 1024 * 1024
    try:
        with first.client(key) as a, second.client(key) as b:
            # When a file is uploaded through the first
            uploaded = a.post(
                "/v1/files",
                files={"file": ("rows.jsonl", content, "application/jsonl")},
                data={"purpose": "batch"},
            )
            assert uploaded.status_code == 200, uploaded.text
            file_id = uploaded.json()["id"]

            # Then the second describes it and serves every byte of it
            assert b.get(f"/v1/files/{file_id}").json() == uploaded.json()
            served = b.get(f"/v1/files/{file_id}/content")
            assert served.status_code == 200
            assert hashlib.sha256(served.content).digest() == hashlib.sha256(content).digest()

            # And a batch made from it through the second runs, and its output is read
            # through the first
            body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions"}
            created = b.post("/v1/batches", json=body)
            assert created.status_code == 200, created.text
            batch = wait_finished(a, created.json()["id"])
            assert batch["status"] == "completed", batch["errors"]
            assert batch["request_counts"]["completed"] == len(lines)
            output = a.get(f"/v1/batches/{batch['id']}/output").content.splitlines()
            assert [orjson.loads(row)["custom_id"] for row in output] == [
                item["custom_id"] for item in lines
            ]

            # And a delete through one is seen by the other at once
            assert a.delete(f"/v1/files/{file_id}").status_code == 200
            assert b.get(f"/v1/files/{file_id}").status_code == 404
            assert b.delete(f"/v1/batches/{batch['id']}").status_code == 200
            assert a.get(f"/v1/batches/{batch['id']}").status_code == 404
    finally:
        second.stop()
        first.stop()
