"""The summarize task: ask for a summary of a text, optionally bounded and shaped."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import Field

from tasks.base import MAX_TOKENS_LIMIT, AnswerRejected, Task, TaskRequest, strict_object
from tasks.prompting import render_prompt

# Room for the JSON wrapper around the summary, so a summary that fills its own
# limit is not cut off before the closing brace.
JSON_WRAPPER_TOKENS = 32


class SummarizeRequest(TaskRequest):
    """A summarize body: the text, optional instructions and an optional summary token limit."""

    model: Literal["summarize"]
    max_tokens: Annotated[int | None, Field(gt=0, le=MAX_TOKENS_LIMIT)] = None


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

    def max_tokens(self, request: SummarizeRequest) -> int | None:
        if request.max_tokens is None:
            return None
        return request.max_tokens + JSON_WRAPPER_TOKENS
