"""The offline engine: answers extract, summarize and classify requests locally, with no model."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson

from service.errors import UpstreamRejected
from service.llm.base import ChatReply, ChatRequest, Usage
from service.llm.offline.classifier import label_matches
from service.llm.offline.extractor import extract_entities
from service.llm.offline.language import estimate_tokens
from service.llm.offline.summarizer import summarize

OFFLINE_MODEL = "offline"
UNSUPPORTED_TASK = (
    "the offline engine serves only extract, summarize and classify; "
    "set TEXTBATCH_LLM_BASE_URL for other models"
)
# Texts longer than this are worked on in a thread so the event loop stays responsive.
THREAD_THRESHOLD_CHARS = 50_000
# Tokens a chat format spends on each message's role and separators.
MESSAGE_OVERHEAD_TOKENS = 4


def _bad_input(what: str) -> UpstreamRejected:
    return UpstreamRejected(f"the offline engine got no valid {what}", upstream_status=400)


def _text_of(task_input: Mapping[str, Any]) -> str:
    text = task_input.get("text")
    if not isinstance(text, str):
        raise _bad_input("text")
    return text


def answer_extract(task_input: Mapping[str, Any]) -> dict[str, Any]:
    """``{"entities": [{"type", "text"}]}`` found by pattern recognizers."""
    entities = task_input.get("entities")
    if not isinstance(entities, Mapping) or not all(
        isinstance(label, str) and isinstance(description, str)
        for label, description in entities.items()
    ):
        raise _bad_input("entities")
    found = extract_entities(_text_of(task_input), entities)
    return {"entities": [{"type": label, "text": span} for label, span in found]}


def answer_summarize(task_input: Mapping[str, Any]) -> dict[str, Any]:
    """``{"summary": str}`` made of the text's most central sentences."""
    max_tokens = task_input.get("max_tokens")
    instructions = task_input.get("instructions") or ""
    if not (max_tokens is None or isinstance(max_tokens, int)) or not isinstance(instructions, str):
        raise _bad_input("max_tokens or instructions")
    summary = summarize(_text_of(task_input), max_tokens=max_tokens, instructions=instructions)
    return {"summary": summary}


def answer_classify(task_input: Mapping[str, Any]) -> dict[str, Any]:
    """``{"labels": {name: bool}}``, the shape classify asks for, by keyword overlap."""
    labels = task_input.get("labels")
    if not isinstance(labels, list) or not all(
        isinstance(label, Mapping)
        and isinstance(label.get("name"), str)
        and isinstance(label.get("rubric"), str)
        for label in labels
    ):
        raise _bad_input("labels")
    text = _text_of(task_input)
    return {
        "labels": {
            label["name"]: label_matches(label["name"], label["rubric"], text) for label in labels
        }
    }


ANSWERERS = {
    "extract": answer_extract,
    "summarize": answer_summarize,
    "classify": answer_classify,
}


OFFLINE_OUTPUT_TOKEN_CAP = 1_000_000


class OfflineEngine:
    """A ``ChatBackend`` that needs no network: deterministic answers from text heuristics."""

    @property
    def name(self) -> str:
        return OFFLINE_MODEL

    @property
    def output_token_cap(self) -> int:
        # The engine writes what the heuristics give; no budget ever cuts it.
        return OFFLINE_OUTPUT_TOKEN_CAP

    @property
    def context_tokens(self) -> int | None:
        # The engine reads any length in one pass, in time linear in the text.
        return None

    async def complete(self, request: ChatRequest) -> ChatReply:
        answerer = ANSWERERS.get(request.task or "")
        if answerer is None:
            raise UpstreamRejected(UNSUPPORTED_TASK, upstream_status=400)
        text = request.task_input.get("text")
        if isinstance(text, str) and len(text) > THREAD_THRESHOLD_CHARS:
            answer = await asyncio.to_thread(answerer, request.task_input)
        else:
            answer = answerer(request.task_input)
        content = orjson.dumps(answer).decode()
        prompt_tokens = sum(
            estimate_tokens(message.get("content", "")) + MESSAGE_OVERHEAD_TOKENS
            for message in request.messages
        )
        return ChatReply(
            content=content,
            model=OFFLINE_MODEL,
            finish_reason="stop",
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=estimate_tokens(content)),
        )

    async def aclose(self) -> None:
        """Nothing to release: the engine holds no connections."""
