"""The value objects and protocol every LLM backend speaks.

Tasks build a ``ChatRequest``; a backend answers with a ``ChatReply`` or raises
one of the ``LLMError`` subclasses from ``service.errors``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the upstream reported them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat completion to run.

    ``response_schema`` is sent as ``response_format`` in the form the upstream's
    profile takes (``json_schema``, ``json_object`` with ``schema``, or not at all), so
    servers with structured outputs can enforce it. ``max_tokens`` is the output budget
    the task chose; the backend clamps it to its ``output_token_cap`` and sends it in
    the field the upstream takes. ``temperature``, ``top_p`` and ``seed`` are left out
    where the upstream does not take them. ``task`` and ``task_input``
    name the task and carry its validated body as plain data; only the offline
    engine reads them, an HTTP backend ignores them.
    """

    messages: list[dict[str, str]]
    response_schema: Mapping[str, Any] | None = None
    schema_name: str = "result"
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    task: str | None = None
    task_input: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChatReply:
    """What the backend answered: the assistant message content and its accounting.

    ``content`` is the answer's text only (parts joined, never reasoning); it is empty
    when the model gave none, e.g. with ``finish_reason`` ``"length"`` when reasoning
    used the budget. ``usage`` totals every billed call, retries and re-sends included;
    ``attempts`` counts the calls made.
    """

    content: str
    model: str
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    request_id: str | None = None
    attempts: int = 1


class ChatBackend(Protocol):
    """Anything that can answer a ``ChatRequest``: the HTTP client or the offline engine."""

    @property
    def name(self) -> str:
        """A short label for ``/readyz`` and logs (``openai-compatible`` or ``offline``)."""
        ...

    @property
    def output_token_cap(self) -> int:
        """The largest output budget a call is sent with; a larger ``max_tokens`` is clamped."""
        ...

    @property
    def context_tokens(self) -> int | None:
        """The model's context window in tokens, or ``None`` when any length fits."""
        ...

    async def complete(self, request: ChatRequest) -> ChatReply:
        """Answer one request, retrying transient faults; raise ``LLMError`` when it cannot."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
