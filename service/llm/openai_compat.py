"""The production backend: chat completions from any OpenAI-compatible HTTP server.

Transient faults (429, 408, 500/502/503/504, timeouts, broken connections, a 200
that is not a chat completion) are retried under a ``RetryPolicy``; aiohttp errors
never leave this module, callers see only the ``LLMError`` tree. An optional
``AdaptiveLimiter`` bounds the attempts in flight and learns from their answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import orjson

from service.errors import (
    LLMError,
    UpstreamFailed,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
)
from service.llm.base import ChatReply, ChatRequest, Usage
from service.llm.call_gate import pass_call_gate
from service.llm.limiter import AdaptiveLimiter
from service.llm.retry import RetryPolicy, parse_retry_after
from service.llm.shared_capacity import SharedCapacity


@dataclass(frozen=True, slots=True)
class UpstreamAnswer:
    """One HTTP answer of the upstream, its body read whole."""

    status_code: int
    # Case-insensitive, as HTTP header names are.
    headers: Mapping[str, str]
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


logger = logging.getLogger(__name__)

_RETRYABLE_STATUSES = frozenset({408, 500, 502, 503, 504})
_EXCERPT_CHARS = 200
_NOT_A_COMPLETION = "upstream answered with a body that is not a chat completion"

_T = TypeVar("_T")

DEFAULT_RETRY = RetryPolicy()


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
        limiter: AdaptiveLimiter | None = None,
        shared: SharedCapacity | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.retry = retry
        self.max_connections = max_connections
        self._api_key = api_key or None
        self.limiter = limiter
        self.shared = shared
        self._client: aiohttp.ClientSession | None = None
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
        client, self._client, self._client_loop = self._client, None, None
        if client is not None:
            await client.close()
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

    def _session(self) -> aiohttp.ClientSession:
        """The backend's keep-alive session, built lazily inside the loop that uses it.

        A session belongs to the loop it was made in, so it is rebuilt if the loop changes.
        Timeouts are per phase, as a slow upstream shows itself: getting a connection
        (pool wait included) and each wait for bytes of the answer.
        """
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            self._client = aiohttp.ClientSession(
                headers=headers,
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=self.timeout, sock_read=self.timeout
                ),
                connector=aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0),
                # HTTP(S)_PROXY and NO_PROXY apply, as they do for most HTTP clients.
                trust_env=True,
            )
            self._client_loop = loop
        return self._client

    async def _post_with_retries(
        self,
        url: str,
        payload: bytes,
        read: Callable[[UpstreamAnswer], _T],
        *,
        reject_client_errors: bool = True,
    ) -> tuple[_T, int]:
        """POST until ``read`` accepts an answer; return it with the attempts it took."""
        session = self._session()
        max_attempts = self.retry.max_attempts
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                response = await self._send(session, url, payload)
            except TimeoutError:
                failure: LLMError = UpstreamTimeout(
                    f"upstream gave no answer within {self.timeout:g}s after {attempt} attempt(s)",
                    attempts=attempt,
                )
            except aiohttp.ClientError as exc:
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

    async def _send(
        self, session: aiohttp.ClientSession, url: str, payload: bytes
    ) -> UpstreamAnswer:
        """One attempt, its answer read whole; limiter slots are held only while it is out."""
        async with contextlib.AsyncExitStack() as slots:
            if self.limiter is not None:
                await slots.enter_async_context(self.limiter.slot())
            if self.shared is not None:
                await slots.enter_async_context(self.shared.slot())
            await pass_call_gate()
            async with session.post(url, data=payload) as raw:
                response = UpstreamAnswer(raw.status, raw.headers, await raw.read())
            if self.limiter is not None:
                if response.is_success:
                    self.limiter.record_success()
                elif _signals_overload(response):
                    self.limiter.record_overload()
            return response

    def _status_failure(
        self, response: UpstreamAnswer, attempt: int, retry_after: float | None
    ) -> LLMError:
        status = response.status_code
        message = (
            f"upstream answered HTTP {status} after {attempt} attempt(s): {self._excerpt(response)}"
        )
        kind = UpstreamRateLimited if status == 429 else UpstreamFailed
        return kind(message, attempts=attempt, upstream_status=status, retry_after=retry_after)

    def _rejection(self, response: UpstreamAnswer, attempt: int) -> LLMError:
        status = response.status_code
        message = f"upstream rejected the request with HTTP {status}: {self._excerpt(response)}"
        kind = UpstreamRejected if 400 <= status < 500 else UpstreamFailed
        return kind(message, attempts=attempt, upstream_status=status)

    def _excerpt(self, response: UpstreamAnswer) -> str:
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


def _signals_overload(response: UpstreamAnswer) -> bool:
    # A bare 503 is as often a crash as a full server; with Retry-After it asks us to back off.
    status = response.status_code
    return status == 429 or (status == 503 and "retry-after" in response.headers)


def _chat_completion_or_raise(response: UpstreamAnswer) -> tuple[dict[str, Any], Mapping[str, str]]:
    try:
        data = orjson.loads(response.content)
        content = data["choices"][0]["message"]["content"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        raise _UnusableBody from exc
    if not isinstance(content, str) or not isinstance(data, dict):
        raise _UnusableBody
    return data, response.headers


def _forwarded_answer(response: UpstreamAnswer) -> tuple[int, dict[str, Any], str | None]:
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
