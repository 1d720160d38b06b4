"""The production backend: chat completions from any OpenAI-compatible HTTP server.

Transient faults (429, 408, 500/502/503/504, timeouts, broken connections, a 200
that is not a chat completion) are retried under a ``RetryPolicy``; httpx errors
never leave this module, callers see only the ``LLMError`` tree. An optional
``AdaptiveLimiter`` bounds the attempts in flight and learns from their answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx
import orjson

from service.errors import (
    LLMError,
    UpstreamFailed,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
)
from service.llm.base import ChatReply, ChatRequest, Usage
from service.llm.limiter import AdaptiveLimiter
from service.llm.retry import RetryPolicy, parse_retry_after
from service.llm.shared_capacity import SharedCapacity

logger = logging.getLogger(__name__)

_RETRYABLE_STATUSES = frozenset({408, 500, 502, 503, 504})
_EXCERPT_CHARS = 200
_NOT_A_COMPLETION = "upstream answered with a body that is not a chat completion"

_T = TypeVar("_T")

DEFAULT_RETRY = RetryPolicy()


CONNECTIONS_PER_CLIENT = 16


class _UnusableBody(Exception):
    """A 2xx answer whose body cannot be read; retried like a 5xx."""


class OpenAICompatibleBackend:
    """Talks to ``{base_url}/chat/completions`` over one shared keep-alive client."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        timeout: float = 60.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        max_connections: int = 64,
        transport: httpx.AsyncBaseTransport | None = None,
        limiter: AdaptiveLimiter | None = None,
        shared: SharedCapacity | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.retry = retry
        self.max_connections = max_connections
        self._api_key = api_key or None
        self._transport = transport
        self.limiter = limiter
        self.shared = shared
        self._clients: list[httpx.AsyncClient] = []
        self._next_client = 0
        self._client_loop: asyncio.AbstractEventLoop | None = None

    @property
    def name(self) -> str:
        return "openai-compatible"

    def __repr__(self) -> str:
        # The key is left out on purpose: reprs end up in logs and tracebacks.
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r}, "
            f"timeout={self.timeout!r}, retry={self.retry!r})"
        )

    async def complete(self, request: ChatRequest) -> ChatReply:
        payload = orjson.dumps(self._chat_payload(request))
        (data, headers), attempts = await self._post_with_retries(
            f"{self.base_url}/chat/completions", payload, _chat_completion_or_raise
        )
        choice = data["choices"][0]
        return ChatReply(
            content=choice["message"]["content"],
            model=_text_or_none(data.get("model")) or self.model,
            finish_reason=_text_or_none(choice.get("finish_reason")) or "stop",
            usage=_usage(data.get("usage")),
            request_id=headers.get("x-request-id") or _text_or_none(data.get("id")),
            attempts=attempts,
        )

    async def forward(
        self, path: str, body: Mapping[str, Any]
    ) -> tuple[int, dict[str, Any], str | None]:
        """POST ``body`` as it is to ``path`` (``/v1/embeddings`` → ``{base_url}/embeddings``).

        A 4xx the upstream meant is returned, not raised, so a pass-through line
        can hand it on; only exhausted retries raise ``LLMError``.
        """
        payload = orjson.dumps(body)
        (status, data, request_id), _ = await self._post_with_retries(
            self.base_url + _strip_version_prefix(path),
            payload,
            _forwarded_answer,
            reject_client_errors=False,
        )
        return status, data, request_id

    async def aclose(self) -> None:
        clients, self._clients, self._client_loop = self._clients, [], None
        for client in clients:
            await client.aclose()
        if self.shared is not None:
            await self.shared.aclose()

    def _chat_payload(self, request: ChatRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "messages": request.messages}
        if request.response_schema is not None:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.schema_name,
                    "schema": request.response_schema,
                    "strict": True,
                },
            }
        optional = {
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
            "max_tokens": request.max_tokens,
        }
        payload.update({key: value for key, value in optional.items() if value is not None})
        return payload

    def _http_client(self) -> httpx.AsyncClient:
        """One of the backend's clients, in turn.

        The connections are split over clients of at most ``CONNECTIONS_PER_CLIENT``:
        the pool's bookkeeping scans every connection on each request, so one pool of
        128 connections costs far more CPU than eight of 16. A pool belongs to the
        loop it was first used in, so clients are built lazily inside that loop and
        rebuilt if the loop changes.
        """
        loop = asyncio.get_running_loop()
        if not self._clients or self._client_loop is not loop:
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            shards = 1 if self._transport else -(-self.max_connections // CONNECTIONS_PER_CLIENT)
            per_client = -(-self.max_connections // shards)
            self._clients = [
                httpx.AsyncClient(
                    headers=headers,
                    timeout=httpx.Timeout(self.timeout),
                    limits=httpx.Limits(
                        max_connections=per_client, max_keepalive_connections=per_client
                    ),
                    transport=self._transport,
                )
                for _ in range(shards)
            ]
            self._client_loop = loop
        self._next_client = (self._next_client + 1) % len(self._clients)
        return self._clients[self._next_client]

    async def _post_with_retries(
        self,
        url: str,
        payload: bytes,
        read: Callable[[httpx.Response], _T],
        *,
        reject_client_errors: bool = True,
    ) -> tuple[_T, int]:
        """POST until ``read`` accepts an answer; return it with the attempts it took."""
        client = self._http_client()
        max_attempts = self.retry.max_attempts
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                response = await self._send(client, url, payload)
            except httpx.TimeoutException:
                failure: LLMError = UpstreamTimeout(
                    f"upstream gave no answer within {self.timeout:g}s after {attempt} attempt(s)",
                    attempts=attempt,
                )
            except httpx.RequestError as exc:
                failure = UpstreamFailed(
                    f"connection to upstream failed after {attempt} attempt(s): "
                    f"{type(exc).__name__}: {self._scrub(str(exc))}",
                    attempts=attempt,
                )
            else:
                status = response.status_code
                if status == 429 or status in _RETRYABLE_STATUSES:
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
                    failure = self._status_failure(response, attempt, retry_after)
                elif status >= 300 and (reject_client_errors or not 400 <= status < 500):
                    raise self._rejection(response, attempt)
                else:
                    try:
                        return read(response), attempt
                    except _UnusableBody:
                        failure = UpstreamFailed(
                            _NOT_A_COMPLETION, attempts=attempt, upstream_status=status
                        )
            if attempt >= max_attempts:
                raise failure
            wait = self.retry.delay(attempt, retry_after)
            # Retries are routine under load; the final error is what callers report.
            logger.info(
                "upstream attempt %d/%d failed (%s); retrying in %.2fs",
                attempt,
                max_attempts,
                failure.message,
                wait,
            )
            await asyncio.sleep(wait)

    async def _send(self, client: httpx.AsyncClient, url: str, payload: bytes) -> httpx.Response:
        """One attempt; slots of the limiters are held only while the request is out."""
        async with contextlib.AsyncExitStack() as slots:
            if self.limiter is not None:
                await slots.enter_async_context(self.limiter.slot())
            if self.shared is not None:
                await slots.enter_async_context(self.shared.slot())
            response = await client.post(url, content=payload)
            if self.limiter is not None:
                if response.is_success:
                    self.limiter.record_success()
                elif _signals_overload(response):
                    self.limiter.record_overload()
            return response

    def _status_failure(
        self, response: httpx.Response, attempt: int, retry_after: float | None
    ) -> LLMError:
        status = response.status_code
        message = (
            f"upstream answered HTTP {status} after {attempt} attempt(s): {self._excerpt(response)}"
        )
        kind = UpstreamRateLimited if status == 429 else UpstreamFailed
        return kind(message, attempts=attempt, upstream_status=status, retry_after=retry_after)

    def _rejection(self, response: httpx.Response, attempt: int) -> LLMError:
        status = response.status_code
        message = f"upstream rejected the request with HTTP {status}: {self._excerpt(response)}"
        kind = UpstreamRejected if 400 <= status < 500 else UpstreamFailed
        return kind(message, attempts=attempt, upstream_status=status)

    def _excerpt(self, response: httpx.Response) -> str:
        """The upstream's own error message, short and on one line."""
        text = response.text
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            error = data.get("error")
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                text = error["message"]
            elif isinstance(error, str):
                text = error
        text = " ".join(self._scrub(text).split())
        if len(text) > _EXCERPT_CHARS:
            text = text[: _EXCERPT_CHARS - 1] + "…"
        return text or "(empty body)"

    def _scrub(self, text: str) -> str:
        # Some servers echo the offending key back in their 401 message.
        if self._api_key:
            return text.replace(self._api_key, "***")
        return text


def _signals_overload(response: httpx.Response) -> bool:
    # A bare 503 is as often a crash as a full server; with Retry-After it asks us to back off.
    status = response.status_code
    return status == 429 or (status == 503 and "retry-after" in response.headers)


def _chat_completion_or_raise(response: httpx.Response) -> tuple[dict[str, Any], httpx.Headers]:
    try:
        data = orjson.loads(response.content)
        content = data["choices"][0]["message"]["content"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        raise _UnusableBody from exc
    if not isinstance(content, str) or not isinstance(data, dict):
        raise _UnusableBody
    return data, response.headers


def _forwarded_answer(response: httpx.Response) -> tuple[int, dict[str, Any], str | None]:
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        if response.is_success:
            raise _UnusableBody from exc
        data = {"error": {"message": response.text[:_EXCERPT_CHARS], "type": "upstream_error"}}
    if not isinstance(data, dict):
        if response.is_success:
            raise _UnusableBody
        data = {"error": {"message": str(data)[:_EXCERPT_CHARS], "type": "upstream_error"}}
    request_id = response.headers.get("x-request-id") or _text_or_none(data.get("id"))
    return response.status_code, data, request_id


def _strip_version_prefix(path: str) -> str:
    # base_url already ends in the API version (``…/v1``), as the openai SDK expects.
    if not path.startswith("/"):
        path = "/" + path
    if path == "/v1" or path.startswith("/v1/"):
        path = path[3:]
    return path


def _usage(raw: object) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    return Usage(
        prompt_tokens=_int_or_zero(raw.get("prompt_tokens")),
        completion_tokens=_int_or_zero(raw.get("completion_tokens")),
    )


def _int_or_zero(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
