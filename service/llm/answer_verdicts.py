"""How an upstream answer is judged: transient or not, a sign of overload, and the error it becomes.

Error messages quote the upstream's own message, short, on one line and with the
key scrubbed; a pass-through answer that is not a JSON object is wrapped as one.
"""

from __future__ import annotations

import re
from typing import Any

from service.errors import (
    ContextLengthExceeded,
    LLMError,
    UpstreamFailed,
    UpstreamRateLimited,
    UpstreamRejected,
)
from service.llm.adaptation import read_complaint
from service.llm.base import Usage
from service.llm.http_exchange import UpstreamAnswer, scrub
from service.llm.profiles import UpstreamProfile
from service.llm.reply_reading import UnusableBody, text_or_none

_EXCERPT_CHARS = 200
# OpenAI's and LiteLLM's "maximum context length", vLLM's "maximum context length is N
# tokens", llama.cpp's exceed_context_size_error and "exceeds the available context size",
# Ollama's and others' "context window" / "context length".
_CONTEXT_OVERFLOW = re.compile(
    r"context[_ ]length|context window|context size|maximum context|exceed_context_size"
    r"|too many tokens|prompt is too long",
    re.IGNORECASE,
)


def is_context_overflow(response: UpstreamAnswer) -> bool:
    """Whether the answer says the prompt does not fit the model's context."""
    if response.status_code not in (400, 413, 422, 500):
        return False
    complaint = read_complaint(response.content)
    return "context_length_exceeded" in complaint.codes or bool(
        _CONTEXT_OVERFLOW.search(complaint.text)
    )


def is_transient(response: UpstreamAnswer, profile: UpstreamProfile) -> bool:
    """Whether asking again may get another answer."""
    status = response.status_code
    if status not in profile.transient_statuses or is_context_overflow(response):
        return False
    # A 5xx that says the request itself is invalid (llama-cpp-python's 500 on a
    # response_format it does not take) will fail again however often it is sent.
    return status < 500 or not read_complaint(response.content).says_request_invalid


def signals_overload(response: UpstreamAnswer) -> bool:
    """Whether the answer asks us to send fewer calls at once."""
    # A bare 503 is as often a crash as a full server; with Retry-After it asks us to back off.
    status = response.status_code
    return status in (429, 529) or (status == 503 and "retry-after" in response.headers)


def status_failure(
    response: UpstreamAnswer, calls: int, retry_after: float | None, secret: str | None
) -> LLMError:
    """The error of a transient status, should every attempt end so."""
    status = response.status_code
    message = f"upstream answered HTTP {status} after {calls} call(s): {excerpt(response, secret)}"
    kind = UpstreamRateLimited if status == 429 else UpstreamFailed
    return kind(message, attempts=calls, upstream_status=status, retry_after=retry_after)


def rejection(response: UpstreamAnswer, calls: int, secret: str | None) -> LLMError:
    """The error of an answer that asking again will not change: a redirect, 4xx, some 5xx."""
    status = response.status_code
    if response.is_redirect:
        # Never followed: the line's text must not go to a host nobody configured.
        message = f"upstream redirected the request with HTTP {status}; redirects are not followed"
        return UpstreamRejected(message, attempts=calls, upstream_status=status)
    if status in (401, 403):
        # The upstream's words about a refused key often quote the key, whole or in part
        # (masked forms escape the scrub), so they are not handed on.
        message = f"upstream rejected the request with HTTP {status}: the API key was refused"
        return UpstreamRejected(message, attempts=calls, upstream_status=status)
    message = f"upstream rejected the request with HTTP {status}: {excerpt(response, secret)}"
    if is_context_overflow(response):
        return ContextLengthExceeded(message, attempts=calls, upstream_status=status)
    invalid = status >= 500 and read_complaint(response.content).says_request_invalid
    kind = UpstreamFailed if status >= 500 and not invalid else UpstreamRejected
    return kind(message, attempts=calls, upstream_status=status)


def excerpt(response: UpstreamAnswer, secret: str | None) -> str:
    """The upstream's own error message, short and on one line."""
    text = response.text
    data = response.json
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            text = error["message"]
        elif isinstance(error, str):
            text = error
    text = " ".join(scrub(text, secret).split())
    if len(text) > _EXCERPT_CHARS:
        text = text[: _EXCERPT_CHARS - 1] + "…"
    return text or "(empty body)"


def with_usage(error: LLMError, usage: list[Usage]) -> LLMError:
    """``error`` carrying the tokens of every billed call that led to it."""
    total = sum(usage, Usage())
    error.prompt_tokens = total.prompt_tokens
    error.completion_tokens = total.completion_tokens
    return error


def forwarded_answer(response: UpstreamAnswer) -> tuple[int, dict[str, Any], str | None]:
    """A pass-through answer as status, JSON object and request id."""
    data = response.json
    if not isinstance(data, dict):
        if response.is_success:
            raise UnusableBody
        message = response.text if data is None else str(data)
        data = {"error": {"message": message[:_EXCERPT_CHARS], "type": "upstream_error"}}
    request_id = response.headers.get("x-request-id") or text_or_none(data.get("id"))
    return response.status_code, data, request_id
