"""The OpenAI batch dialect: a JSONL file uploaded to ``/v1/files``, run by ``/v1/batches``.

Any server speaking OpenAI's file and batch API works (OpenAI itself, another
textbatch). A batch is marked with ``metadata.textbatch_tag`` and its input file is
named after the tag, so ``find`` can tell whether an earlier worker already made it.
httpx, not aiohttp: these are a handful of calls per batch, and httpx writes the
multipart upload. No call follows a redirect; errors leave as ``NativeBatchApiError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import orjson

from service.errors import NativeBatchApiError
from service.llm.native.base import NativeBatch, NativeRequest, NativeResult, NativeStatus
from service.llm.native.endpoint import NativeEndpoint

TAG_KEY = "textbatch_tag"
_LIST_PAGE = 100
_STATUSES = {
    "validating": NativeStatus.RUNNING,
    "in_progress": NativeStatus.RUNNING,
    "finalizing": NativeStatus.RUNNING,
    "completed": NativeStatus.COMPLETED,
    "failed": NativeStatus.FAILED,
    "expired": NativeStatus.EXPIRED,
    "cancelling": NativeStatus.CANCELLING,
    "cancelled": NativeStatus.CANCELLED,
}
# Line error codes that mean "never ran", as the hosted API writes them.
_NOT_RUN = {"batch_expired": "expired", "batch_cancelled": "canceled"}


def request_file(requests: Sequence[NativeRequest]) -> bytes:
    """The JSONL input file of an upstream batch."""
    return b"".join(
        orjson.dumps({"custom_id": r.custom_id, "method": "POST", "url": r.url, "body": r.body})
        + b"\n"
        for r in requests
    )


def read_result_line(raw: bytes) -> NativeResult | None:
    """One line of an output or error file; ``None`` for a line that is not a result."""
    try:
        item = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(item, dict) or not isinstance(item.get("custom_id"), str):
        return None
    custom_id = item["custom_id"]
    response = item.get("response")
    error = item.get("error")
    if isinstance(response, dict) and isinstance(response.get("status_code"), int):
        status = response["status_code"]
        body = response.get("body")
        body = body if isinstance(body, dict) else None
        state = "succeeded" if 200 <= status < 300 else "errored"
        return NativeResult(custom_id, state, status, body)
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    state = _NOT_RUN.get(code, "errored") if isinstance(code, str) else "errored"
    return NativeResult(custom_id, state, message=str(message or code or "no result"))


def batch_of(data: Any) -> NativeBatch:
    """A batch object of the API as a ``NativeBatch``."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise NativeBatchApiError("the upstream answered with something that is not a batch")
    counts = data.get("request_counts")
    counts = counts if isinstance(counts, dict) else {}
    return NativeBatch(
        id=data["id"],
        status=_STATUSES.get(str(data.get("status")), NativeStatus.RUNNING),
        request_counts={
            name: int(counts[name])
            for name in ("total", "completed", "failed")
            if isinstance(counts.get(name), int)
        },
    )


class OpenAIBatchClient:
    """``NativeBatchClient`` over OpenAI's ``/v1/files`` and ``/v1/batches``."""

    def __init__(
        self, endpoint: NativeEndpoint, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.endpoint = endpoint
        self.max_lines = endpoint.max_lines
        self.max_bytes = endpoint.max_bytes
        headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
        self._http = httpx.AsyncClient(
            base_url=endpoint.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(endpoint.timeout, connect=endpoint.connect_timeout),
            follow_redirects=False,
            # The I/O layer, replaceable in tests (httpx's own test seam).
            transport=transport,
        )

    def __repr__(self) -> str:
        # No key: reprs end up in logs.
        return f"{type(self).__name__}(upstream={self.endpoint.name!r})"

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise NativeBatchApiError(
                f"{method} {path} on upstream {self.endpoint.name} failed: {type(exc).__name__}"
            ) from None
        if not response.is_success:
            # The body is left out: an upstream may echo what it was sent.
            raise NativeBatchApiError(
                f"{method} {path} on upstream {self.endpoint.name} answered {response.status_code}",
                upstream_status=response.status_code,
            )
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise NativeBatchApiError(
                f"{method} {path} on upstream {self.endpoint.name} answered with no JSON",
                upstream_status=response.status_code,
            ) from None

    async def find(self, tag: str) -> NativeBatch | None:
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": _LIST_PAGE}
            if after is not None:
                params["after"] = after
            page = await self._call("GET", "/batches", params=params)
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list) or not data:
                return None
            for item in data:
                metadata = item.get("metadata") if isinstance(item, dict) else None
                if isinstance(metadata, dict) and metadata.get(TAG_KEY) == tag:
                    return batch_of(item)
            if not page.get("has_more"):
                return None
            after = str(data[-1].get("id"))

    async def submit(
        self, tag: str, requests: Sequence[NativeRequest], completion_window: str
    ) -> NativeBatch:
        files = {"file": (f"{tag}.jsonl", request_file(requests), "application/jsonl")}
        uploaded = await self._call("POST", "/files", data={"purpose": "batch"}, files=files)
        file_id = uploaded.get("id") if isinstance(uploaded, dict) else None
        if not isinstance(file_id, str):
            raise NativeBatchApiError(f"upstream {self.endpoint.name} gave the upload no id")
        endpoints = {request.url for request in requests}
        created = await self._call(
            "POST",
            "/batches",
            json={
                "input_file_id": file_id,
                "endpoint": endpoints.pop() if len(endpoints) == 1 else "/v1/chat/completions",
                "completion_window": completion_window,
                "metadata": {TAG_KEY: tag},
            },
        )
        return batch_of(created)

    async def retrieve(self, batch_id: str) -> NativeBatch:
        return batch_of(await self._call("GET", f"/batches/{batch_id}"))

    async def results(self, batch_id: str) -> AsyncIterator[NativeResult]:
        data = await self._call("GET", f"/batches/{batch_id}")
        for name in ("output_file_id", "error_file_id"):
            file_id = data.get(name) if isinstance(data, dict) else None
            if not isinstance(file_id, str):
                continue
            async for result in self._file_results(file_id):
                yield result

    async def _file_results(self, file_id: str) -> AsyncIterator[NativeResult]:
        path = f"/files/{file_id}/content"
        try:
            async with self._http.stream("GET", path) as response:
                if not response.is_success:
                    raise NativeBatchApiError(
                        f"GET {path} on upstream {self.endpoint.name} answered "
                        f"{response.status_code}",
                        upstream_status=response.status_code,
                    )
                async for text in response.aiter_lines():
                    result = read_result_line(text.encode()) if text.strip() else None
                    if result is not None:
                        yield result
        except httpx.HTTPError as exc:
            raise NativeBatchApiError(
                f"GET {path} on upstream {self.endpoint.name} failed: {type(exc).__name__}"
            ) from None

    async def cancel(self, batch_id: str) -> NativeBatch:
        return batch_of(await self._call("POST", f"/batches/{batch_id}/cancel"))

    async def aclose(self) -> None:
        await self._http.aclose()
