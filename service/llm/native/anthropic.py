"""Anthropic's Message Batches API (``/v1/messages/batches``) as a ``NativeBatchClient``.

Requests are translated to Messages params (``anthropic_messages``) and sent in one
``POST /v1/messages/batches``; each custom_id carries the batch's tag (``anthropic_ids``).
A batch's state maps to ``NativeStatus`` thus:

    processing_status   and                          NativeStatus
    in_progress                                      RUNNING
    canceling                                        CANCELLING
    ended               cancel_initiated_at is set   CANCELLED
    ended               some request expired         EXPIRED
    ended               otherwise                    COMPLETED (errored lines are per line)

Anthropic refuses a bad batch when it is created, so no batch ever reads FAILED.
``request_counts`` become ``total`` (every request), ``completed`` (succeeded) and
``failed`` (errored); canceled and expired requests are neither. Anthropic's window is
fixed at 24 hours, so ``completion_window`` is not sent. Results are streamed from the
batch's ``results_url`` line by line, and only from the same origin as ``base_url``: the
key is never sent to a host nobody configured. No call follows a redirect. Creating a
batch is never retried (a retry after a lost answer would create a second one); reads
and cancels are.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import orjson

from service.errors import (
    LLMError,
    UpstreamFailed,
    UpstreamRejected,
    UpstreamResponseTooLarge,
    UpstreamTimeout,
)
from service.llm.answer_verdicts import is_transient, rejection, status_failure
from service.llm.http_exchange import UpstreamAnswer, scrub
from service.llm.native.anthropic_ids import read_wire_id, tag_mark, wire_id
from service.llm.native.anthropic_messages import (
    DEFAULT_MAX_TOKENS,
    UntranslatableRequest,
    messages_params,
)
from service.llm.native.anthropic_replies import native_batch, native_result, parse_time
from service.llm.native.base import NativeBatch, NativeRequest, NativeResult
from service.llm.profiles import PROFILES
from service.llm.retry import RetryPolicy, parse_retry_after

ANTHROPIC_VERSION = "2023-06-01"
# Anthropic's documented limits of one Message Batch.
MAX_LINES = 100_000
MAX_BYTES = 256 * 1024 * 1024
CHAT_URL = "/v1/chat/completions"
_PIECE_BYTES = 64 * 1024
_LIST_PAGE = 100


class AnthropicBatchClient:
    """Drives Anthropic's Message Batches API at ``base_url`` (``https://api.anthropic.com/v1``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        max_lines: int = MAX_LINES,
        max_bytes: int = MAX_BYTES,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        find_window: timedelta = timedelta(hours=24),
        find_max_batches: int = 200,
        max_response_bytes: int = 8 * 1024 * 1024,
        max_result_line_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.default_max_tokens = default_max_tokens
        self.find_window = find_window
        self.find_max_batches = find_max_batches
        self.max_response_bytes = max_response_bytes
        self.max_result_line_bytes = max_result_line_bytes
        self._api_key = api_key or None
        self._origin = _origin(self.base_url)
        self._client: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        # The key is left out on purpose: reprs end up in logs and tracebacks.
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    async def find(self, tag: str) -> NativeBatch | None:
        """The batch submitted with ``tag``, when it has ended; ``None`` otherwise.

        Anthropic keeps no metadata and does not show a batch's requests, only its
        results once it has ended. So the batches created within ``find_window`` (24
        hours, Anthropic's longest processing time) are listed, newest first, at most
        ``find_max_batches`` of them, and the first result of each ended one is read for
        the tag's mark. A batch still in progress cannot be recognised: a worker that
        died between creating a batch and storing its id may create a second one.
        """
        mark = tag_mark(tag)
        oldest = datetime.now(UTC) - self.find_window
        after_id: str | None = None
        seen = 0
        while seen < self.find_max_batches:
            query = {"limit": _LIST_PAGE, **({"after_id": after_id} if after_id else {})}
            page = await self._json("GET", f"{self._batches_url}?{urlencode(query)}")
            for data in page.get("data") or []:
                seen += 1
                created = parse_time(data.get("created_at")) if isinstance(data, dict) else None
                if created is not None and created < oldest:
                    return None
                if isinstance(data, dict) and await self._first_mark(data) == mark:
                    return native_batch(data)
            after_id = page.get("last_id")
            if not page.get("has_more") or not isinstance(after_id, str):
                return None
        return None

    async def submit(
        self, tag: str, requests: Sequence[NativeRequest], completion_window: str
    ) -> NativeBatch:
        payload = orjson.dumps({"requests": [self._entry(tag, r) for r in requests]})
        if len(requests) > self.max_lines or len(payload) > self.max_bytes:
            raise UpstreamRejected(
                f"{len(requests)} requests in {len(payload)} bytes are over Anthropic's limit "
                f"of {self.max_lines} requests or {self.max_bytes} bytes per batch"
            )
        return native_batch(await self._json("POST", self._batches_url, payload, retry=False))

    async def retrieve(self, batch_id: str) -> NativeBatch:
        return native_batch(await self._json("GET", self._batch_url(batch_id)))

    async def results(self, batch_id: str) -> AsyncIterator[NativeResult]:
        data = await self._json("GET", self._batch_url(batch_id))
        url = data.get("results_url")
        if data.get("processing_status") != "ended" or not isinstance(url, str):
            raise UpstreamRejected(f"batch {batch_id} has not ended: it has no results yet")
        async for line in self._lines(url):
            result = native_result(line)
            if result is not None:
                yield result

    async def cancel(self, batch_id: str) -> NativeBatch:
        return native_batch(await self._json("POST", self._batch_url(batch_id) + "/cancel", b""))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    @property
    def _batches_url(self) -> str:
        return f"{self.base_url}/messages/batches"

    def _batch_url(self, batch_id: str) -> str:
        return f"{self._batches_url}/{quote(batch_id, safe='')}"

    def _entry(self, tag: str, request: NativeRequest) -> dict[str, Any]:
        try:
            if request.url != CHAT_URL:
                raise UntranslatableRequest("url", f"only {CHAT_URL} requests can be batched")
            translated = messages_params(request.body, default_max_tokens=self.default_max_tokens)
            custom_id = wire_id(tag, request.custom_id, answer_tool=translated.answer_tool)
        except ValueError as exc:
            raise UpstreamRejected(
                f"line {request.custom_id[:80]!r} cannot be sent to Anthropic's Message "
                f"Batches API: {exc}"
            ) from exc
        return {"custom_id": custom_id, "params": translated.params}

    async def _first_mark(self, data: dict[str, Any]) -> str | None:
        """The tag mark of the first result of an ended batch, if it has one."""
        url = data.get("results_url")
        # An archived batch's results are gone; one that has not ended has none yet.
        ended = data.get("processing_status") == "ended" and not data.get("archived_at")
        if not ended or not isinstance(url, str):
            return None
        lines = self._lines(url)
        try:
            async for line in lines:
                with_id = orjson.loads(line)
                wire = with_id.get("custom_id") if isinstance(with_id, dict) else None
                parsed = read_wire_id(wire) if isinstance(wire, str) else None
                return parsed.mark if parsed else None
        except orjson.JSONDecodeError:
            return None
        finally:
            await lines.aclose()
        return None

    def _session(self) -> aiohttp.ClientSession:
        if self._client is None or self._client.closed:
            headers = {"anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json"}
            if self._api_key:
                headers["x-api-key"] = self._api_key
            self._client = aiohttp.ClientSession(
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout),
                # HTTP(S)_PROXY and NO_PROXY apply, as for the other upstream calls.
                trust_env=True,
            )
        return self._client

    async def _json(
        self, method: str, url: str, payload: bytes | None = None, *, retry: bool = True
    ) -> dict[str, Any]:
        """The JSON object answered to one call, retried on transient faults when ``retry``."""
        attempts = self.retry.max_attempts if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                answer = await self._exchange(method, url, payload)
            except (TimeoutError, aiohttp.ClientError) as exc:
                if attempt < attempts:
                    await asyncio.sleep(self.retry.delay(attempt, None))
                    continue
                detail = f"{type(exc).__name__}: {scrub(str(exc), self._api_key)}"
                kind = UpstreamTimeout if isinstance(exc, TimeoutError) else UpstreamFailed
                raise kind(f"{method} {urlsplit(url).path} failed: {detail}") from exc
            if answer.is_success and isinstance(answer.json, dict):
                return answer.json
            if answer.is_success:
                raise UpstreamFailed(f"{method} {urlsplit(url).path}: the answer is not JSON")
            if not is_transient(answer, PROFILES["anthropic"]):
                raise rejection(answer, attempt, self._api_key)
            if attempt == attempts:
                raise status_failure(answer, attempt, None, self._api_key)
            retry_after = parse_retry_after(answer.headers.get("retry-after"))
            await asyncio.sleep(self.retry.delay(attempt, retry_after))
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _exchange(self, method: str, url: str, payload: bytes | None) -> UpstreamAnswer:
        async with asyncio.timeout(self.timeout):
            async with self._session().request(
                method, url, data=payload, allow_redirects=False
            ) as raw:
                content = await _read_capped(raw, self.max_response_bytes)
                return UpstreamAnswer(raw.status, raw.headers, scrub_bytes(content, self._api_key))

    async def _lines(self, url: str) -> AsyncGenerator[bytes, None]:
        """The non-blank lines of the results file at ``url``, read piece by piece."""
        if _origin(url) != self._origin:
            raise UpstreamRejected("the batch's results_url is on another host than base_url")
        read_timeout = aiohttp.ClientTimeout(total=None, sock_read=self.timeout)
        try:
            async with self._session().get(url, allow_redirects=False, timeout=read_timeout) as raw:
                if raw.status != 200:
                    content = await _read_capped(raw, self.max_response_bytes)
                    answer = UpstreamAnswer(raw.status, raw.headers, content)
                    failure: LLMError = (
                        status_failure(answer, 1, None, self._api_key)
                        if is_transient(answer, PROFILES["anthropic"])
                        else rejection(answer, 1, self._api_key)
                    )
                    raise failure
                pending = bytearray()
                async for piece in raw.content.iter_chunked(_PIECE_BYTES):
                    pending += piece
                    *lines, rest = bytes(pending).split(b"\n")
                    pending = bytearray(rest)
                    if len(pending) > self.max_result_line_bytes:
                        raise UpstreamResponseTooLarge(
                            f"a result line is over {self.max_result_line_bytes} bytes"
                        )
                    for line in lines:
                        if line.strip():
                            yield line
                if pending.strip():
                    yield bytes(pending)
        except TimeoutError as exc:
            raise UpstreamTimeout("reading the batch's results timed out") from exc
        except aiohttp.ClientError as exc:
            detail = scrub(str(exc), self._api_key)
            raise UpstreamFailed(f"reading the batch's results failed: {detail}") from exc


async def _read_capped(raw: aiohttp.ClientResponse, limit: int) -> bytes:
    content = bytearray()
    async for piece in raw.content.iter_chunked(_PIECE_BYTES):
        content += piece
        if len(content) > limit:
            raise UpstreamResponseTooLarge(f"the upstream's answer is over {limit} bytes")
    return bytes(content)


def scrub_bytes(content: bytes, secret: str | None) -> bytes:
    """``content`` with ``secret`` replaced: some servers echo the key they were sent."""
    return content.replace(secret.encode(), b"***") if secret else content


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()
