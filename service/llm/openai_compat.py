"""The production backend: chat completions from any OpenAI-compatible HTTP server.

The request is written as the upstream's profile says, adapted to what it refused
before (``service.llm.adaptation``): a 400 naming a parameter we chose to send is
learned from and the call sent again at once, not counted as a fault. Transient
faults (the profile's statuses, timeouts, broken connections, a 2xx that is not a
chat completion) are retried under a ``RetryPolicy``; aiohttp errors never leave
this module, callers see only the ``LLMError`` tree. Every call goes through the
backend's ``AdaptiveLimiter``, one per upstream, shared by task and pass-through lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import orjson

from service.errors import (
    LLMError,
    UpstreamFailed,
    UpstreamResponseTooLarge,
    UpstreamTimeout,
)
from service.llm.adaptation import learn, read_complaint
from service.llm.answer_verdicts import (
    forwarded_answer,
    is_transient,
    rejection,
    signals_overload,
    status_failure,
    with_usage,
)
from service.llm.base import ChatReply, ChatRequest, Usage
from service.llm.call_gate import pass_call_gate
from service.llm.call_metrics import PARAMETER_REFUSED, AttemptRecord, AttemptRecords
from service.llm.http_exchange import (
    DIRECT,
    AnswerTooLarge,
    UpstreamAnswer,
    env_proxy,
    exchange,
    new_session,
    scrub,
)
from service.llm.limiter import AdaptiveLimiter
from service.llm.profiles import PROFILES, UpstreamProfile
from service.llm.reply_reading import (
    CompletionRead,
    UnusableBody,
    chat_reply,
    read_completion,
    usage_of,
)
from service.llm.request_shape import Adaptations, chat_payload
from service.llm.retry import RetryPolicy, parse_retry_after
from service.llm.shared_capacity import SharedCapacity
from service.observability.metrics import show_upstream_limit

logger = logging.getLogger(__name__)

_NOT_A_COMPLETION = "upstream answered with a body that is not a chat completion"
# Each adaptation removes or weakens one thing we sent, so a handful covers them all.
_MAX_ADAPTATIONS_PER_CALL = 8
_DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024

_T = TypeVar("_T")
# Stands in for a slot the backend has no limiter or shared capacity for.
_NO_SLOT: contextlib.nullcontext[None] = contextlib.nullcontext()

DEFAULT_RETRY = RetryPolicy()

# Given a refusal and the body that was refused: the body to send instead, or None.
Adapter = Callable[[UpstreamAnswer, bytes], bytes | None]


class OpenAICompatibleBackend:
    """Talks to ``{base_url}/chat/completions`` over one shared keep-alive client."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        timeout: float = 60.0,
        connect_timeout: float | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        max_connections: int = 64,
        limiter: AdaptiveLimiter | None = None,
        shared: SharedCapacity | None = None,
        profile: UpstreamProfile = PROFILES["generic"],
        max_output_tokens: int = 16_384,
        max_response_bytes: int = _DEFAULT_MAX_RESPONSE_BYTES,
        context_tokens: int | None = None,
        upstream: str = "default",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # The configured name (``default`` or a TEXTBATCH_UPSTREAMS key): the metrics' label.
        self.upstream = upstream
        self.model = model
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout or timeout, timeout)
        self.retry = retry
        self.max_connections = max_connections
        self._api_key = api_key or None
        self.limiter = limiter
        self.shared = shared
        self.profile = profile
        self.max_output_tokens = max_output_tokens
        self.max_response_bytes = max_response_bytes
        self._context_tokens = context_tokens or profile.context_tokens
        # What this upstream refused for our model, learned in this process.
        self.adaptations = Adaptations()
        # Whether the last call needed a retry: a failing upstream is said once, not per retry.
        self._retrying = False
        self._client: aiohttp.ClientSession | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._proxy = DIRECT
        if limiter is not None:
            show_upstream_limit(upstream, limiter.limit)
        # Set on a view made by ``with_api_key``: the backend whose pool the view uses.
        self._pool_owner: OpenAICompatibleBackend | None = None

    @property
    def name(self) -> str:
        return "openai-compatible"

    @property
    def output_token_cap(self) -> int:
        """The largest output budget a call is sent with: profile, setting and what was learned."""
        cap = min(self.profile.output_token_cap, self.max_output_tokens)
        learned = self.adaptations.output_token_cap
        return min(cap, learned) if learned is not None else cap

    @property
    def context_tokens(self) -> int:
        """The model's context window: prompt and output budget of a call must fit in it."""
        return self._context_tokens

    def _failing(self, failure: LLMError) -> None:
        if not self._retrying:
            self._retrying = True
            logger.warning(
                "upstream %s is failing (%s, HTTP %s); retrying its calls (each retry at DEBUG)",
                self._host,
                failure.code,
                failure.upstream_status or "-",
            )

    def _answered(self) -> None:
        if self._retrying:
            self._retrying = False
            logger.info("upstream %s answers again", self._host)

    def __repr__(self) -> str:
        # The key is left out on purpose: reprs end up in logs and tracebacks.
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r}, "
            f"profile={self.profile.name!r}, timeout={self.timeout!r}, retry={self.retry!r})"
        )

    async def complete(self, request: ChatRequest) -> ChatReply:
        usage: list[Usage] = []

        def payload() -> bytes:
            return orjson.dumps(self._chat_payload(request))

        def adapt(answer: UpstreamAnswer, sent: bytes) -> bytes | None:
            current = payload()
            if current != sent:
                # Another call learned meanwhile what this one was refused for.
                return current
            change = learn(
                answer.status_code,
                read_complaint(answer.content),
                self._chat_payload(request),
                request.response_schema,
                self.profile,
                self.adaptations,
            )
            if change is None:
                return None
            logger.warning(
                "upstream %s refused a parameter for model %s (HTTP %d); from now on %s",
                self._host,
                self.model,
                answer.status_code,
                change,
            )
            return payload()

        (read, headers), attempts = await self._post_with_retries(
            f"{self.base_url}/chat/completions", payload(), _completion, usage, adapt=adapt
        )
        request_id = headers.get("x-request-id") or read.completion_id
        return chat_reply(read, self.model, request_id, sum(usage, Usage()), attempts)

    async def forward(
        self, path: str, body: Mapping[str, Any]
    ) -> tuple[int, dict[str, Any], str | None]:
        """POST ``body`` as it is to ``path`` (``/v1/embeddings`` → ``{base_url}/embeddings``).

        A 4xx the upstream meant is returned, not raised, so a pass-through line
        can hand it on; only exhausted retries, a redirect or an oversized answer raise.
        """
        (status, data, request_id), _ = await self._post_with_retries(
            self.base_url + _strip_version_prefix(path),
            orjson.dumps(body),
            forwarded_answer,
            [],
            reject_client_errors=False,
        )
        return status, data, request_id

    def with_api_key(self, api_key: str) -> OpenAICompatibleBackend:
        """This upstream's client, sending ``api_key`` as its bearer instead of the configured key.

        A caller's own provider key (BYOK): the view shares this backend's connection pool,
        limiter, capacity share and what was learned about the server, so calls with many
        callers' keys are still bounded as one upstream's. It owns nothing: no closing.
        """
        view = copy.copy(self)
        view._api_key = api_key
        view._pool_owner = self._pool_owner or self
        return view

    async def aclose(self) -> None:
        if self._pool_owner is not None:
            return  # a view: the pool is its owner's to close
        client, self._client, self._client_loop = self._client, None, None
        if client is not None:
            await client.close()
        if self.shared is not None:
            await self.shared.aclose()

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        """The body ``complete`` would send for ``request`` now (the native lane sends it)."""
        return self._chat_payload(request)

    def _chat_payload(self, request: ChatRequest) -> dict[str, Any]:
        return chat_payload(
            request,
            model=self.model,
            profile=self.profile,
            adaptations=self.adaptations,
            output_token_cap=self.output_token_cap,
        )

    @property
    def _host(self) -> str:
        # Logged: the URL without path or query, and so without credentials in either.
        return self.base_url.split("//", 1)[-1].split("/", 1)[0].rpartition("@")[2]

    def _session(self) -> aiohttp.ClientSession:
        """The backend's keep-alive session, built lazily inside the loop that uses it.

        A session belongs to the loop it was made in, so it is rebuilt if the loop changes.
        The connect timeout bounds opening a connection; the call's total deadline is
        set per exchange.
        """
        if self._pool_owner is not None:
            return self._pool_owner._session()
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = new_session(
                self._api_key,
                connect_timeout=self.connect_timeout,
                max_connections=self.max_connections,
            )
            self._proxy = env_proxy(self.base_url)
            self._client_loop = loop
        return self._client

    async def _post_with_retries(
        self,
        url: str,
        payload: bytes,
        read: Callable[[UpstreamAnswer], _T],
        usage: list[Usage],
        *,
        reject_client_errors: bool = True,
        adapt: Adapter | None = None,
    ) -> tuple[_T, int]:
        """POST until ``read`` accepts an answer; return it with the calls it took.

        The usage of every answer with a readable body is appended to ``usage``.
        """
        with AttemptRecords(self.upstream) as records:
            return await self._post_attempts(
                url,
                payload,
                read,
                usage,
                records,
                reject_client_errors=reject_client_errors,
                adapt=adapt,
            )

    async def _post_attempts(
        self,
        url: str,
        payload: bytes,
        read: Callable[[UpstreamAnswer], _T],
        usage: list[Usage],
        records: AttemptRecords,
        *,
        reject_client_errors: bool,
        adapt: Adapter | None,
    ) -> tuple[_T, int]:
        session = self._session()
        max_attempts = self.retry.max_attempts
        attempt = calls = adaptations = 0
        while True:
            attempt += 1
            calls += 1
            record = records.begin()
            retry_after: float | None = None
            try:
                response = await self._send(session, url, payload, record)
            except TimeoutError:
                failure: LLMError = UpstreamTimeout(
                    f"upstream gave no whole answer within {self.timeout:g}s "
                    f"after {attempt} attempt(s)",
                    attempts=calls,
                )
            except AnswerTooLarge as exc:
                raise with_usage(
                    UpstreamResponseTooLarge(str(exc), attempts=calls), usage
                ) from None
            except aiohttp.ClientError as exc:
                failure = UpstreamFailed(
                    f"connection to upstream failed after {attempt} attempt(s): "
                    f"{type(exc).__name__}: {scrub(str(exc), self._api_key)}",
                    attempts=calls,
                )
            else:
                usage.append(usage_of(response.json))
                status = response.status_code
                if not response.is_success and adapt is not None:
                    adapted = (
                        adapt(response, payload)
                        if adaptations < _MAX_ADAPTATIONS_PER_CALL
                        else None
                    )
                    if adapted is not None:
                        # The request was ours to fix: send it again now, not as a retry.
                        adaptations += 1
                        attempt -= 1
                        record.retry_reason = PARAMETER_REFUSED
                        payload = adapted
                        continue
                if response.is_redirect:
                    raise with_usage(rejection(response, calls, self._api_key), usage)
                if is_transient(response, self.profile):
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
                    failure = status_failure(response, calls, retry_after, self._api_key)
                elif not response.is_success and (reject_client_errors or not 400 <= status < 500):
                    raise with_usage(rejection(response, calls, self._api_key), usage)
                else:
                    try:
                        result = read(response), calls
                    except UnusableBody:
                        failure = UpstreamFailed(
                            _NOT_A_COMPLETION, attempts=calls, upstream_status=status
                        )
                    else:
                        self._answered()
                        return result
            if attempt >= max_attempts:
                raise with_usage(failure, usage)
            record.retried_for(failure)
            wait = self.retry.delay(attempt, retry_after)
            # Retries are routine under load; the final error is what callers report. The
            # failure's message may quote the request's text, so it goes to DEBUG only.
            self._failing(failure)
            logger.debug(
                "upstream %s attempt %d/%d failed (%s, HTTP %s); retrying in %.2fs",
                self._host,
                attempt,
                max_attempts,
                failure.code,
                failure.upstream_status or "-",
                wait,
            )
            logger.debug("upstream attempt %d failed: %s", attempt, failure.message)
            await asyncio.sleep(wait)

    async def _send(
        self, session: aiohttp.ClientSession, url: str, payload: bytes, record: AttemptRecord
    ) -> UpstreamAnswer:
        """One exchange; limiter slots are held only while it is out, and learn from it."""
        # Plain ``async with`` of both (a no-op for one not set): an exit stack per call
        # cost more than the two slots themselves.
        limiter_slot = _NO_SLOT if self.limiter is None else self.limiter.slot()
        shared_slot = _NO_SLOT if self.shared is None else self.shared.slot()
        async with limiter_slot, shared_slot:
            await pass_call_gate()
            with record.sending():
                try:
                    response = await exchange(
                        session,
                        url,
                        payload,
                        deadline=self.timeout,
                        max_bytes=self.max_response_bytes,
                        secret=self._api_key,
                        # A view's key replaces the session's configured one, for its calls only.
                        headers=(
                            {"Authorization": f"Bearer {self._api_key}"}
                            if self._pool_owner is not None
                            else None
                        ),
                        proxy=(self._pool_owner or self)._proxy,
                    )
                except TimeoutError:
                    if self.limiter is not None:
                        self.limiter.record_overload()
                    raise
                record.answered(response.status_code)
            if self.limiter is not None:
                if response.is_success:
                    self.limiter.record_answer(response.elapsed, _work_of(response))
                elif signals_overload(response):
                    self.limiter.record_overload()
                show_upstream_limit(self.upstream, self.limiter.limit)
            return response


def _completion(response: UpstreamAnswer) -> tuple[CompletionRead, Mapping[str, str]]:
    return read_completion(response.json), response.headers


def _work_of(response: UpstreamAnswer) -> float:
    # Decoding an output token costs about what reading ten prompt tokens does.
    usage = usage_of(response.json)
    return usage.completion_tokens + usage.prompt_tokens / 10


def _strip_version_prefix(path: str) -> str:
    # base_url already ends in the API version (``…/v1``), as the openai SDK expects.
    if not path.startswith("/"):
        path = "/" + path
    if path == "/v1" or path.startswith("/v1/"):
        path = path[3:]
    return path
