"""Helpers to build JSONL batches and wait for them, as a client would."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import redis

from service.store import keys


def line(custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def to_jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(item) + b"\n" for item in lines)


def submit(client: httpx.Client, lines: list[dict[str, Any]]) -> httpx.Response:
    return client.post(
        "/v1/batches", content=to_jsonl(lines), headers={"content-type": "application/jsonl"}
    )


def wait_finished(client: httpx.Client, batch_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch: dict[str, Any] = client.get(f"/v1/batches/{batch_id}").json()
        if batch["status"] in {"completed", "failed", "cancelled", "expired"}:
            return batch
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} did not finish in {timeout} s")


def output_lines(client: httpx.Client, batch_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/batches/{batch_id}/output")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/jsonl")
    return [orjson.loads(raw) for raw in response.content.splitlines() if raw.strip()]


def run_batch(
    client: httpx.Client, lines: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    response = submit(client, lines)
    assert response.status_code == 200, response.text
    batch = wait_finished(client, response.json()["id"])
    return batch, output_lines(client, batch["id"])


def content_of(output_line: dict[str, Any]) -> dict[str, Any]:
    """The task result carried in a successful output line."""
    body = output_line["response"]["body"]
    result: dict[str, Any] = orjson.loads(body["choices"][0]["message"]["content"])
    return result


def stored_input_lines(stored: redis.Redis, batch_id: str) -> list[bytes]:
    """A batch's input lines as the service stored them (pages of lines, newline-joined)."""
    pages = stored.lrange(keys.batch_lines(batch_id), 0, -1)
    return b"\n".join(pages).split(b"\n") if pages else []  # type: ignore[arg-type]
