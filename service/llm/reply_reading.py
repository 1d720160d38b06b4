"""Reads a chat completion body as servers really send it into what a task needs.

Content may be a string or a list of parts (joined); ``null`` content is a
well-formed answer too (cut off at the budget, or nothing to say), never a broken
server. A ``refusal`` is the model's word and ends the call. Reasoning
(``reasoning_content``, ``reasoning``, reasoning parts) is never content; its tokens
are part of the completion tokens, as OpenAI counts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.errors import ModelRefused
from service.llm.base import ChatReply, Usage

_REFUSAL_CHARS = 200
_REASONING_PART_TYPES = frozenset({"reasoning", "thinking", "redacted_thinking"})


class UnusableBody(Exception):
    """A 2xx answer that is not a chat completion at all; retried like a 5xx."""


@dataclass(frozen=True, slots=True)
class CompletionRead:
    """The parts of one chat completion a reply is made of."""

    content: str
    finish_reason: str
    refusal: str | None
    model: str | None
    completion_id: str | None


def read_completion(data: Any) -> CompletionRead:
    """The first choice of a chat completion; ``UnusableBody`` if ``data`` is not one."""
    if not isinstance(data, Mapping):
        raise UnusableBody
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise UnusableBody
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, Mapping):
        raise UnusableBody
    content = _content_text(message.get("content"))
    if content is None:
        raise UnusableBody
    refusal = message.get("refusal")
    return CompletionRead(
        content=content,
        finish_reason=text_or_none(choice.get("finish_reason")) or "stop",
        refusal=refusal if isinstance(refusal, str) and refusal.strip() else None,
        model=text_or_none(data.get("model")),
        completion_id=text_or_none(data.get("id")),
    )


def chat_reply(
    read: CompletionRead, model: str, request_id: str | None, usage: Usage, calls: int
) -> ChatReply:
    """The reply ``read`` makes; ``ModelRefused``, carrying ``usage``, if the model refused."""
    if read.refusal is not None:
        refused = ModelRefused(
            f"the model refused: {' '.join(read.refusal.split())[:_REFUSAL_CHARS]}",
            attempts=calls,
        )
        refused.prompt_tokens = usage.prompt_tokens
        refused.completion_tokens = usage.completion_tokens
        raise refused
    return ChatReply(
        content=read.content,
        model=read.model or model,
        finish_reason=read.finish_reason,
        usage=usage,
        request_id=request_id,
        attempts=calls,
    )


def _content_text(content: object) -> str | None:
    """The text of ``content``: a string, ``""`` for null, parts joined; ``None`` if neither."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    texts: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Mapping) and part.get("type") not in _REASONING_PART_TYPES:
            text = part.get("text")
            if isinstance(text, str):
                texts.append(text)
    return "".join(texts)


def usage_of(data: object) -> Usage:
    """The tokens a body reports, reasoning included; nothing for a body without usage."""
    if not isinstance(data, Mapping):
        return Usage()
    raw = data.get("usage")
    if not isinstance(raw, Mapping):
        return Usage()
    prompt = _count(raw.get("prompt_tokens")) or _count(raw.get("input_tokens"))
    completion = _count(raw.get("completion_tokens")) or _count(raw.get("output_tokens"))
    details = raw.get("completion_tokens_details")
    reasoning = _count(details.get("reasoning_tokens")) if isinstance(details, Mapping) else 0
    # OpenAI counts reasoning inside completion_tokens; a server that reports more
    # reasoning than completion tokens counted them apart.
    if reasoning > completion:
        completion += reasoning
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


@dataclass(frozen=True, slots=True)
class PassThroughUsage:
    """The tokens of a pass-through answer, whichever endpoint's shape reports them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Input tokens served from the upstream's prompt cache (part of ``prompt_tokens``).
    cached_tokens: int = 0


def passthrough_usage(data: object) -> PassThroughUsage:
    """Usage of chat, completions and embeddings (``prompt_tokens``/``completion_tokens``,
    ``prompt_tokens_details.cached_tokens``), responses (``input_tokens``/``output_tokens``,
    ``input_tokens_details.cached_tokens``), and moderations (usually none)."""
    raw = data.get("usage") if isinstance(data, Mapping) else None
    if not isinstance(raw, Mapping):
        return PassThroughUsage()
    prompt = _count(raw.get("prompt_tokens")) or _count(raw.get("input_tokens"))
    completion = _count(raw.get("completion_tokens")) or _count(raw.get("output_tokens"))
    cached = 0
    for name in ("prompt_tokens_details", "input_tokens_details"):
        details = raw.get(name)
        if isinstance(details, Mapping):
            cached = cached or _count(details.get("cached_tokens"))
    return PassThroughUsage(prompt, completion, min(cached, prompt))


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
