"""The summarize task: ask for a summary of a text, optionally bounded and shaped."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, ValidationInfo, field_validator

from tasks.base import (
    MAX_TOKENS_LIMIT,
    AnswerRejected,
    Task,
    TaskRequest,
    limits_from,
    strict_object,
)
from tasks.prompting import render_prompt

# ``max_tokens`` bounds the summary, not the call: the call also needs room for the
# JSON around it, for escapes inside it, and for a model that miscounts its own
# length. With only 32 tokens of room, real servers cut the JSON mid-string.
ENVELOPE_TOKENS = 48
ENVELOPE_SHARE = 4  # plus a quarter of the summary's own bound
# Without ``max_tokens`` the summary is bounded by the text it summarizes.
UNBOUNDED_BASE_TOKENS = 512
UNBOUNDED_CHARS_PER_TOKEN = 16


class SummarizeRequest(TaskRequest):
    """A summarize body: the text, optional instructions and an optional summary token limit."""

    model: Literal["summarize"]
    max_tokens: Annotated[int | None, Field(gt=0, le=MAX_TOKENS_LIMIT)] = None

    @field_validator("max_tokens")
    @classmethod
    def _max_tokens_within_the_cap(cls, max_tokens: int | None, info: ValidationInfo) -> int | None:
        cap = limits_from(info).max_output_tokens
        if max_tokens is not None and max_tokens > cap:
            raise ValueError(
                f"max_tokens is {max_tokens}; the most this service's model takes is {cap} "
                "(TEXTBATCH_LLM_MAX_OUTPUT_TOKENS, lowered by the upstream's profile)"
            )
        return max_tokens


class SummarizeTask(Task[SummarizeRequest]):
    """Ask for ``{"summary": str}`` and return it stripped."""

    name = "summarize"
    request_model = SummarizeRequest

    def output_schema(self, request: SummarizeRequest) -> dict[str, Any]:
        return strict_object({"summary": {"type": "string"}})

    def render_messages(self, request: SummarizeRequest) -> list[dict[str, str]]:
        return render_prompt(
            self.name,
            text=request.text,
            instructions=request.instructions,
            max_tokens=request.max_tokens,
            schema=orjson.dumps(self.output_schema(request)).decode(),
        )

    def postprocess(self, request: SummarizeRequest, answer: dict[str, Any]) -> dict[str, Any]:
        summary = answer.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            raise AnswerRejected("the summary is empty")
        return {"summary": summary.strip()}

    def output_budget(self, request: SummarizeRequest, cap: int) -> int:
        if request.max_tokens is None:
            return min(cap, UNBOUNDED_BASE_TOKENS + len(request.text) // UNBOUNDED_CHARS_PER_TOKEN)
        envelope = ENVELOPE_TOKENS + request.max_tokens // ENVELOPE_SHARE
        return min(cap, request.max_tokens + envelope)
