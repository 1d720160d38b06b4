"""Reads what Anthropic's Message Batches API answers, in the shapes of the native lane.

A batch object becomes a ``NativeBatch`` (the mapping is in ``anthropic``'s module
docstring); a results line becomes a ``NativeResult``. A Messages answer becomes an
OpenAI chat completion: text blocks are joined into ``content`` (or, when the request's
``response_format`` became a forced tool, that tool's input as JSON text);
``stop_reason`` becomes ``finish_reason``; ``usage`` counts cached input in
``prompt_tokens`` as OpenAI does, and in ``prompt_tokens_details.cached_tokens``. An
errored result's error type gives the HTTP status a direct call would have had.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from service.errors import UpstreamFailed
from service.llm.native.anthropic_ids import read_wire_id
from service.llm.native.base import NativeBatch, NativeResult, NativeStatus

logger = logging.getLogger(__name__)

_STATUSES = {"in_progress": NativeStatus.RUNNING, "canceling": NativeStatus.CANCELLING}
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Anthropic's error types and the HTTP status each comes with on a direct call.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def chat_completion(message: dict[str, Any], *, answer_tool: bool) -> dict[str, Any]:
    """The OpenAI chat completion body for an Anthropic Messages ``message``."""
    blocks = [block for block in message.get("content") or [] if isinstance(block, dict)]
    text = "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
    uses = [block for block in blocks if block.get("type") == "tool_use"]
    stop_reason = str(message.get("stop_reason") or "end_turn")
    finish_reason = _FINISH_REASONS.get(stop_reason, "stop")
    reply: dict[str, Any] = {"role": "assistant", "content": text}
    if answer_tool:
        # The answer is the object the forced tool was called with; any text beside it
        # is the model's preamble, not the answer.
        reply["content"] = orjson.dumps(uses[0].get("input", {})).decode() if uses else text
        if finish_reason == "tool_calls":
            finish_reason = "stop"
    elif uses:
        reply["content"] = text or None
        reply["tool_calls"] = [_tool_call(use) for use in uses]
    if stop_reason == "refusal":
        reply["refusal"] = text or "the model declined to answer"
        reply["content"] = None
    return {
        "id": str(message.get("id", "")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(message.get("model", "")),
        "choices": [{"index": 0, "message": reply, "finish_reason": finish_reason}],
        "usage": _usage(message.get("usage")),
    }


def error_result(error: object) -> tuple[int, dict[str, Any], str]:
    """Status, OpenAI-shaped error body and message for an errored result's ``error``."""
    inner = error.get("error") if isinstance(error, dict) else None
    # Results carry the error response of a direct call: {"type": "error", "error": {...}}.
    detail = inner if isinstance(inner, dict) else error if isinstance(error, dict) else {}
    kind = str(detail.get("type") or "api_error")
    message = str(detail.get("message") or kind)
    status = ERROR_STATUS.get(kind, 500)
    return status, {"error": {"message": message, "type": kind, "code": kind}}, message


def _tool_call(use: dict[str, Any]) -> dict[str, Any]:
    arguments = orjson.dumps(use.get("input", {})).decode()
    function = {"name": str(use.get("name", "")), "arguments": arguments}
    return {"id": str(use.get("id", "")), "type": "function", "function": function}


def _usage(raw: object) -> dict[str, Any]:
    usage = raw if isinstance(raw, dict) else {}

    def count(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    cached = count("cache_read_input_tokens")
    # Anthropic's input_tokens leaves out cached and cache-written input; OpenAI's
    # prompt_tokens holds every input token, the cached ones among them.
    prompt = count("input_tokens") + cached + count("cache_creation_input_tokens")
    completion = count("output_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def native_batch(data: object) -> NativeBatch:
    """A Message Batch object as a ``NativeBatch``; see the module for the mapping."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise UpstreamFailed("the upstream answered with something that is not a message batch")
    raw_counts = data.get("request_counts")
    raw_counts = raw_counts if isinstance(raw_counts, dict) else {}
    counts = {
        name: value
        for name, value in raw_counts.items()
        if isinstance(value, int) and not isinstance(value, bool)
    }
    processing = data.get("processing_status")
    if processing == "ended":
        if data.get("cancel_initiated_at"):
            status = NativeStatus.CANCELLED
        elif counts.get("expired", 0) > 0:
            status = NativeStatus.EXPIRED
        else:
            status = NativeStatus.COMPLETED
    else:
        status = _STATUSES.get(str(processing), NativeStatus.RUNNING)
    request_counts = {
        "total": sum(counts.values()),
        "completed": counts.get("succeeded", 0),
        "failed": counts.get("errored", 0),
    }
    return NativeBatch(data["id"], status, request_counts)


def native_result(line: bytes) -> NativeResult | None:
    """One line of a results file as a ``NativeResult``; ``None`` for one not ours."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        logger.warning("a line of an Anthropic batch's results is not JSON; it is skipped")
        return None
    wire = data.get("custom_id") if isinstance(data, dict) else None
    parsed = read_wire_id(wire) if isinstance(wire, str) else None
    result = data.get("result") if isinstance(data, dict) else None
    if parsed is None or not isinstance(result, dict):
        logger.warning("a result of an Anthropic batch has no custom_id of ours; it is skipped")
        return None
    kind = result.get("type")
    if kind == "succeeded":
        message = result.get("message")
        body = chat_completion(
            message if isinstance(message, dict) else {}, answer_tool=parsed.answer_tool
        )
        return NativeResult(parsed.custom_id, "succeeded", 200, body)
    if kind == "errored":
        status, body, text = error_result(result.get("error"))
        return NativeResult(parsed.custom_id, "errored", status, body, text)
    if kind in ("canceled", "expired"):
        return NativeResult(parsed.custom_id, kind, message=f"the request was {kind} before it ran")
    return NativeResult(parsed.custom_id, "errored", message=f"unknown result type {kind!r}")


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
