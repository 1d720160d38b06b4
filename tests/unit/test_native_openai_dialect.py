"""The OpenAI batch dialect: what it uploads, how it finds a batch again, how it reads results."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from service.errors import NativeBatchApiError
from service.llm.native.base import NativeRequest, NativeStatus
from service.llm.native.endpoint import NativeEndpoint
from service.llm.native.openai import OpenAIBatchClient, read_result_line

ENDPOINT = NativeEndpoint(name="up", base_url="http://upstream.test/v1", api_key="sk-secret")


class FakeBatchApi:
    """A tiny in-memory OpenAI file and batch API behind httpx's transport seam."""

    def __init__(self, batches: list[dict[str, Any]] | None = None) -> None:
        self.batches = batches or []
        self.requests: list[httpx.Request] = []
        self.files: dict[str, bytes] = {}

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "GET" and path == "/v1/batches":
            after = request.url.params.get("after")
            start = 0 if after is None else [b["id"] for b in self.batches].index(after) + 1
            page = self.batches[start : start + 2]
            more = start + 2 < len(self.batches)
            return httpx.Response(200, json={"data": page, "has_more": more})
        if request.method == "POST" and path == "/v1/files":
            self.files["file-1"] = request.content
            return httpx.Response(200, json={"id": "file-1"})
        if request.method == "POST" and path == "/v1/batches":
            body = orjson.loads(request.content)
            batch = {"id": "batch-new", "status": "validating", **body}
            self.batches.insert(0, batch)
            return httpx.Response(200, json=batch)
        if path == "/v1/batches/batch-done":
            return httpx.Response(
                200,
                json={"id": "batch-done", "status": "completed", "output_file_id": "out"},
            )
        if path == "/v1/files/out/content":
            lines = [
                {"custom_id": "0", "response": {"status_code": 200, "body": {"id": "c"}}},
                {"custom_id": "1", "response": None, "error": {"code": "batch_expired"}},
            ]
            return httpx.Response(200, content=b"\n".join(orjson.dumps(x) for x in lines))
        if path == "/v1/batches/moved":
            return httpx.Response(302, headers={"location": "http://elsewhere.test/"})
        return httpx.Response(404, json={"error": {"message": "no"}})


def client_for(api: FakeBatchApi) -> OpenAIBatchClient:
    return OpenAIBatchClient(ENDPOINT, transport=httpx.MockTransport(api.handle))


def test_find_pages_through_the_list_until_the_tag_is_seen() -> None:
    batches = [
        {"id": f"b{n}", "status": "in_progress", "metadata": {"textbatch_tag": f"t{n}"}}
        for n in range(5)
    ]
    api = FakeBatchApi(batches)
    found = asyncio.run(client_for(api).find("t4"))
    assert found is not None and found.id == "b4"
    assert found.status is NativeStatus.RUNNING
    assert [r.url.params.get("after") for r in api.requests] == [None, "b1", "b3"]
    assert asyncio.run(client_for(FakeBatchApi(batches)).find("t9")) is None


def test_submit_uploads_a_jsonl_named_by_the_tag_and_marks_the_batch() -> None:
    api = FakeBatchApi()
    request = NativeRequest("7", "/v1/chat/completions", {"model": "m", "messages": []})
    batch = asyncio.run(client_for(api).submit("bt-0", [request], "24h"))
    assert batch.id == "batch-new"
    upload, create = api.requests
    assert upload.headers["authorization"] == "Bearer sk-secret"
    assert b'filename="bt-0.jsonl"' in upload.content
    assert b'name="purpose"\r\n\r\nbatch' in upload.content
    assert b'{"custom_id":"7","method":"POST","url":"/v1/chat/completions"' in upload.content
    sent = orjson.loads(create.content)
    assert sent["metadata"] == {"textbatch_tag": "bt-0"}
    assert sent["completion_window"] == "24h"
    assert sent["input_file_id"] == "file-1"


def test_results_read_answers_and_lines_that_never_ran() -> None:
    async def read() -> list[Any]:
        return [r async for r in client_for(FakeBatchApi()).results("batch-done")]

    answered, expired = asyncio.run(read())
    assert (answered.custom_id, answered.state, answered.status_code) == ("0", "succeeded", 200)
    assert (expired.custom_id, expired.state) == ("1", "expired")


def test_a_redirect_is_an_error_not_followed() -> None:
    with pytest.raises(NativeBatchApiError) as raised:
        asyncio.run(client_for(FakeBatchApi()).retrieve("moved"))
    assert raised.value.upstream_status == 302
    assert not raised.value.transient


def test_result_lines_map_each_error_shape_to_a_state() -> None:
    rejected = read_result_line(
        b'{"custom_id":"3","response":{"status_code":400,"body":{"error":{}}},"error":null}'
    )
    assert rejected is not None and rejected.state == "errored" and rejected.status_code == 400
    cancelled = read_result_line(b'{"custom_id":"4","error":{"code":"batch_cancelled"}}')
    assert cancelled is not None and cancelled.state == "canceled"
    assert read_result_line(b"not json") is None
    assert read_result_line(b'{"no_custom_id": 1}') is None
