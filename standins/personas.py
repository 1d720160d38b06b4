"""Stand-in upstreams with the habits of real LLM servers, one persona per habit.

Each persona answers the three tasks *rightly*, from the request alone
(``standins.persona_answers``), so a test can check results exactly. What differs is how
the answer is wrapped, refused, cut or rejected, as the real servers named in
``PERSONAS`` do it. A persona is chosen per
instance, or per call by a model name ``persona-<name>``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from standins import answers
from standins.persona_answers import (
    CHARS_PER_TOKEN,
    TaskAsk,
    careless_answer,
    read_ask,
    requested_schema,
    right_answer,
    tokens,
)
from standins.upstream import StandinUpstream

PERSONAS: dict[str, str] = {
    "reasoning": "OpenAI o-series: 400 for max_tokens and temperature/top_p, reasoning tokens",
    "think": "a <think> block (with braces in it) before the JSON, as R1/Qwen3 servers give",
    "chatty": "prose around a fenced JSON answer",
    "non_enforcing": "ignores response_format: label case, object shape, extras, curly quotes",
    "refusal": "content null and message.refusal for texts that ask for something harmful",
    "truncating": "finish_reason length and cut JSON when the output budget is too small",
    "overloaded": "HTTP 529 with Retry-After on the first call of each text",
    "content_parts": "content as a list of text parts",
    "gemini": "400 INVALID_ARGUMENT for additionalProperties in the response schema",
    "whitespace_loop": "JSON then whitespace until the output budget (the model's limit if none)",
    "llamacpp_python": "500 for json_schema; json_object with a schema is taken and enforced",
}

# A text with this phrase is refused by the ``refusal`` persona.
REFUSAL_TRIGGER = "pick a lock"
REFUSAL_MESSAGE = "I'm sorry, but I can't help with that."
# Tokens the ``reasoning`` persona thinks before answering, out of the output budget.
REASONING_TOKENS = 32
# The output limit of a model when a call sends none (``truncating`` and ``whitespace_loop``).
TRUNCATING_DEFAULT_BUDGET = 16
MODEL_OUTPUT_LIMIT = 4096
OVERLOADED_RETRY_AFTER = 1

_THINK_BLOCK = (
    '<think>\nThe user wants one JSON object such as {"entities": []} or '
    '{"labels": [{"name": "x"}]}; first I read the text carefully.\n</think>\n\n'
)


@dataclass
class PersonaCall:
    """One chat call as a persona answered it."""

    persona: str
    text: str
    at: float
    status: int
    finish_reason: str | None
    budget: int | None
    body: dict[str, Any]
    usage: dict[str, Any] = field(default_factory=dict)


class PersonaUpstream(StandinUpstream):
    """The stand-in upstream with one persona's habits on ``/v1/chat/completions``."""

    def __init__(self, persona: str, **kwargs: Any) -> None:
        if persona not in PERSONAS:
            raise ValueError(f"unknown persona {persona!r}; one of {sorted(PERSONAS)}")
        super().__init__(**kwargs)
        self.persona = persona
        self._answered: list[PersonaCall] = []
        self._seen_texts: set[str] = set()
        self._persona_lock = threading.Lock()

    @property
    def answered(self) -> list[PersonaCall]:
        with self._persona_lock:
            return list(self._answered)

    def calls_for(self, text: str) -> list[PersonaCall]:
        """The chat calls whose task input was ``text``, in arrival order."""
        return [call for call in self.answered if call.text == text]

    async def _chat(self, request: Request) -> Response:
        body, _, refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        model = str(body.get("model", ""))
        persona = model.removeprefix("persona-") if model.startswith("persona-") else ""
        persona = persona if persona in PERSONAS else self.persona
        ask = read_ask(body)
        with self._persona_lock:
            first_of_text = ask.text not in self._seen_texts
            self._seen_texts.add(ask.text)
        status, payload, headers = getattr(self, f"_{persona}")(body, ask, first_of_text)
        call = PersonaCall(
            persona=persona,
            text=ask.text,
            at=time.monotonic(),
            status=status,
            finish_reason=_finish_reason(payload) if status == 200 else None,
            budget=_budget(body),
            body=body,
            usage=payload.get("usage", {}) if isinstance(payload, dict) else {},
        )
        with self._persona_lock:
            self._answered.append(call)
        return Response(
            orjson.dumps(payload), status, headers=headers, media_type="application/json"
        )

    # --- the personas: each returns (status, payload, headers) ---------------------------

    def _reasoning(self, body: dict[str, Any], ask: TaskAsk, first: bool) -> _Reply:
        if "max_tokens" in body:
            return _openai_error(
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "max_tokens",
                "unsupported_parameter",
            )
        for name in ("temperature", "top_p"):
            if name in body and body[name] != 1:
                return _openai_error(
                    f"Unsupported value: '{name}' does not support {body[name]} with this "
                    "model. Only the default (1) value is supported.",
                    name,
                    "unsupported_value",
                )
        content = _json(right_answer(ask))
        budget = _budget(body)
        if budget is not None and budget < REASONING_TOKENS + tokens(content):
            # The thinking used the budget up: OpenAI then returns an empty content.
            return _completion(body, "", "length", REASONING_TOKENS, budget, max(budget, 1))
        return _completion(body, content, "stop", REASONING_TOKENS)

    def _think(self, body: dict[str, Any], ask: TaskAsk, first: bool) -> _Reply:
        return _completion(body, _THINK_BLOCK + _json(right_answer(ask)), "stop")

    def _chatty(self, body: dict[str, Any], ask: TaskAsk, first: bool) -> _Reply:
        pretty = orjson.dumps(right_answer(ask), option=orjson.OPT_INDENT_2).decode()
        content = (
            f"Sure! Here is the result you asked for:\n\n```json\n{pretty}\n```\n\n"
            "Let me know if you need anything else."
        )
        return _completion(body, content, "stop")

    def _non_enforcing(self, body: dict[str, Any], ask: TaskAsk, first: bool) -> _Reply:
        # A byte-order mark in front, as some proxies pass it through.
        return _completion(body, "\ufeff" + _json(careless_answer(ask)), "stop")

    def _refusal(self, body: dict[str, Any], ask: TaskAsk, first: bool) -> _Reply:
        if REFUSAL_TRIGGER in ask.text:
            message = {"role": "assistant", "content": None, "refusal": REFUSAL_MESSAGE}
            return _completion(body, None, "stop", message=message)
        return _completion(body, _json(right_answer(ask)), "stop")

    def _truncating(self, body: dict[str, Any], ask: TaskAsk, first: bool) -> _Reply:
        content = _json(right_answer(ask))
        budget = _budget(body) or TRUNCATING_DEFAULT_BUDGET
        if tokens(content) > budget:
            cut = content[: budget * CHARS_PER_TOKEN]
            return _completion(body, cut, "length", completion_tokens=budget)
        return _completion(body, content, "stop")

    def _overloaded(self, body: dict[str, Any], ask: TaskAsk, first: bool) -> _Reply:
        if first:
            # Anthropic's shape for its overloaded status.
            payload = {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
            }
            return 529, payload, {"Retry-After": str(OVERLOADED_RETRY_AFTER)}
        return _completion(body, _json(right_answer(ask)), "stop")

    def _content_parts(self, body: dict[str, Any], ask: TaskAsk, first: bool) -> _Reply:
        content = _json(right_answer(ask))
        half = len(content) // 2
        parts = [{"type": "text", "text": content[:half]}, {"type": "text", "text": content[half:]}]
        return _completion(body, parts, "stop", completion_tokens=tokens(content))

    def _gemini(self, body: dict[str, Any], ask: TaskAsk, first: bool) -> _Reply:
        schema = requested_schema(body)
        if schema is not None and b'"additionalProperties"' in orjson.dumps(schema):
            message = (
                'Invalid JSON payload received. Unknown name "additionalProperties" at '
                "'generation_config.response_schema': Cannot find field."
            )
            # Gemini's OpenAI-compatible endpoint wraps its error object in a list.
            error = {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}
            return 400, [{"error": error}], {}
        return _completion(body, _json(right_answer(ask)), "stop")

    def _whitespace_loop(self, body: dict[str, Any], ask: TaskAsk, first: bool) -> _Reply:
        content = _json(right_answer(ask))
        budget = _budget(body) or MODEL_OUTPUT_LIMIT
        if tokens(content) > budget:
            cut = content[: budget * CHARS_PER_TOKEN]
            return _completion(body, cut, "length", completion_tokens=budget)
        # A grammar that allows whitespace after the object lets the model loop on "\n",
        # one token each, until the budget runs out.
        padding = "\n" * (budget - tokens(content))
        return _completion(body, content + padding, "length", completion_tokens=budget)

    def _llamacpp_python(self, body: dict[str, Any], ask: TaskAsk, first: bool) -> _Reply:
        format_ = body.get("response_format")
        if isinstance(format_, dict) and format_.get("type") not in (None, "text", "json_object"):
            detail = (
                "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
                "'msg': \"Input should be 'text' or 'json_object'\", "
                f"'input': {format_.get('type')!r}, "
                "'ctx': {'expected': \"'text' or 'json_object'\"}}]"
            )
            error = {
                "message": detail,
                "type": "internal_server_error",
                "param": None,
                "code": None,
            }
            return 500, {"error": error}, {}
        return _completion(body, _json(right_answer(ask)), "stop")


_Reply = tuple[int, Any, dict[str, str]]


def _completion(
    body: dict[str, Any],
    content: Any,
    finish_reason: str,
    reasoning_tokens: int = 0,
    budget: int | None = None,
    completion_tokens: int | None = None,
    message: dict[str, Any] | None = None,
) -> _Reply:
    """A chat completion with usage counted by ``tokens``; reasoning tokens are part of it."""
    if completion_tokens is None:
        visible = content if isinstance(content, str) else ""
        completion_tokens = tokens(visible) + reasoning_tokens
    prompt_tokens = tokens(answers.message_text(body.get("messages")))
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if reasoning_tokens:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    payload = {
        "id": "chatcmpl-persona",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "standin-model"),
        "choices": [
            {
                "index": 0,
                "message": message or {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
    }
    return 200, payload, {}


def _openai_error(message: str, param: str, code: str) -> _Reply:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return 400, {"error": error}, {}


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _budget(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _finish_reason(payload: Any) -> str | None:
    try:
        return str(payload["choices"][0]["finish_reason"])
    except (KeyError, IndexError, TypeError):
        return None
