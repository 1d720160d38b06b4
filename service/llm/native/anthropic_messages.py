"""Translates an OpenAI chat-completions body into Anthropic Messages params.

``system``/``developer`` messages become ``system``; ``max_tokens`` (which Messages
requires) comes from ``max_completion_tokens`` or ``max_tokens``, else a default;
``stop`` becomes ``stop_sequences``; ``temperature`` is clamped to Anthropic's 0..1 and,
when both are given, sent without ``top_p``. A ``response_format`` with a JSON Schema
becomes one tool whose ``input_schema`` is that schema, forced with ``tool_choice``:
Anthropic then answers with an object built to the schema, which ``anthropic_replies``
hands back as the message content, JSON text.
``json_object`` without a schema becomes an instruction in ``system``. Caller ``tools``
become Anthropic tools. Fields Messages has no counterpart for and that no answer
depends on (``seed``, penalties, ``n`` of 1, ...) are dropped; any other field is
refused with ``UntranslatableRequest`` naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

DEFAULT_MAX_TOKENS = 4096
_MAX_TEMPERATURE = 1.0
_TOOL_NAME = re.compile(r"[^A-Za-z0-9_-]")
_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)
JSON_OBJECT_INSTRUCTION = "Answer with one JSON object and nothing else."
# Read elsewhere (model, messages) or translated one by one below.
_TRANSLATED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "response_format",
        "tools",
        "tool_choice",
        "user",
    }
)
# No Messages counterpart, and no answer is wrong without them: sampling hints and
# OpenAI-side bookkeeping. ``n`` is checked to be 1 before it is dropped.
_DROPPED = frozenset(
    {
        "seed",
        "n",
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "stream",
        "stream_options",
        "store",
        "metadata",
        "parallel_tool_calls",
        "service_tier",
        "reasoning_effort",
    }
)


class UntranslatableRequest(ValueError):
    """The body holds something Messages cannot express; ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


@dataclass(frozen=True, slots=True)
class MessagesParams:
    """One request as Messages params, and whether its answer is the forced tool's input."""

    params: dict[str, Any]
    answer_tool: bool = False


def messages_params(
    body: dict[str, Any], *, default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> MessagesParams:
    """The Messages params for an OpenAI chat-completions ``body``."""
    for name in body:
        if name not in _TRANSLATED and name not in _DROPPED:
            raise UntranslatableRequest(name, "has no counterpart in Anthropic's Messages API")
    if body.get("n", 1) != 1:
        raise UntranslatableRequest("n", "Anthropic's Messages API gives one answer per request")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise UntranslatableRequest("model", "a model name is required")
    system, messages = _conversation(body.get("messages"))
    params: dict[str, Any] = {
        "model": model,
        "max_tokens": _max_tokens(body, default_max_tokens),
        "messages": messages,
    }
    if isinstance(body.get("temperature"), int | float):
        params["temperature"] = min(float(body["temperature"]), _MAX_TEMPERATURE)
    # Newer Claude models refuse temperature and top_p together; temperature is the one
    # our task lines always set, so it wins.
    if isinstance(body.get("top_p"), int | float) and "temperature" not in params:
        params["top_p"] = float(body["top_p"])
    stop = body.get("stop")
    if stop:
        params["stop_sequences"] = [stop] if isinstance(stop, str) else [str(s) for s in stop]
    if isinstance(body.get("user"), str):
        params["metadata"] = {"user_id": body["user"]}
    answer_tool = _apply_response_format(body.get("response_format"), params, system)
    if body.get("tools"):
        if answer_tool:
            raise UntranslatableRequest(
                "tools", "cannot be combined with a response_format schema on Anthropic"
            )
        params["tools"] = [_tool(tool) for tool in body["tools"]]
        if body.get("tool_choice") is not None:
            params["tool_choice"] = _tool_choice(body["tool_choice"])
    if system:
        params["system"] = "\n\n".join(system)
    return MessagesParams(params, answer_tool)


def _conversation(raw: object) -> tuple[list[str], list[dict[str, Any]]]:
    if not isinstance(raw, list) or not raw:
        raise UntranslatableRequest("messages", "a non-empty list of messages is required")
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for index, message in enumerate(raw):
        if not isinstance(message, dict):
            raise UntranslatableRequest(f"messages[{index}]", "a message must be an object")
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_plain_text(message.get("content"), f"messages[{index}].content"))
        elif role == "user":
            messages.append({"role": "user", "content": _content(message.get("content"), index)})
        elif role == "assistant":
            messages.append({"role": "assistant", "content": _assistant(message, index)})
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": str(message.get("tool_call_id", "")),
                "content": _plain_text(message.get("content"), f"messages[{index}].content"),
            }
            messages.append({"role": "user", "content": [result]})
        else:
            raise UntranslatableRequest(f"messages[{index}].role", f"unknown role {role!r}")
    if not messages:
        raise UntranslatableRequest("messages", "at least one user message is required")
    return system, messages


def _content(content: object, index: int) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise UntranslatableRequest(f"messages[{index}].content", "must be text or parts")
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part, dict):
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "image_url" and isinstance(part, dict):
            blocks.append(_image(part.get("image_url"), index))
        else:
            raise UntranslatableRequest(f"messages[{index}].content", f"part type {kind!r}")
    return blocks


def _image(image: object, index: int) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise UntranslatableRequest(f"messages[{index}].content", "an image_url needs a url")
    data_url = _DATA_URL.match(url)
    if data_url:
        source = {"type": "base64", "media_type": data_url["media"], "data": data_url["data"]}
        return {"type": "image", "source": source}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _assistant(message: dict[str, Any], index: int) -> str | list[dict[str, Any]]:
    content = message.get("content")
    calls = message.get("tool_calls") or []
    if not calls:
        return _content(content or "", index)
    blocks: list[dict[str, Any]] = []
    if content:
        text = _plain_text(content, f"messages[{index}].content")
        blocks.append({"type": "text", "text": text})
    for call in calls:
        function = call.get("function", {}) if isinstance(call, dict) else {}
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError as exc:
            raise UntranslatableRequest(
                f"messages[{index}].tool_calls", "arguments are not JSON"
            ) from exc
        blocks.append(
            {
                "type": "tool_use",
                "id": str(call.get("id", "")),
                "name": str(function.get("name", "")),
                "input": arguments,
            }
        )
    return blocks


def _plain_text(content: object, param: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    raise UntranslatableRequest(param, "must be text")


def _max_tokens(body: dict[str, Any], default: int) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise UntranslatableRequest(name, "must be at least 1")
            return value
    return default


def _apply_response_format(format_: object, params: dict[str, Any], system: list[str]) -> bool:
    """Write ``response_format`` into ``params``; whether the answer is a forced tool's input."""
    if not isinstance(format_, dict) or format_.get("type") in (None, "text"):
        return False
    spec = format_.get("json_schema")
    if format_.get("type") == "json_schema" and isinstance(spec, dict):
        name, schema = str(spec.get("name") or "result"), spec.get("schema")
    elif format_.get("type") == "json_object":
        name, schema = "result", format_.get("schema")
        if schema is None:
            system.append(JSON_OBJECT_INSTRUCTION)
            return False
    else:
        raise UntranslatableRequest("response_format", f"type {format_.get('type')!r}")
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise UntranslatableRequest("response_format", "an Anthropic tool needs an object schema")
    tool_name = _TOOL_NAME.sub("_", name)[:64]
    description = str(spec.get("description") or "") if isinstance(spec, dict) else ""
    params["tools"] = [
        {
            "name": tool_name,
            "description": description or "Give the answer; its input is the answer.",
            "input_schema": schema,
        }
    ]
    params["tool_choice"] = {"type": "tool", "name": tool_name}
    return True


def _tool(tool: object) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if (
        not isinstance(tool, dict)
        or tool.get("type") != "function"
        or not isinstance(function, dict)
    ):
        raise UntranslatableRequest("tools", "only function tools can be translated")
    translated: dict[str, Any] = {
        "name": str(function.get("name", "")),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        translated["description"] = str(function["description"])
    return translated


def _tool_choice(choice: object) -> dict[str, Any]:
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and function.get("name"):
        return {"type": "tool", "name": str(function["name"])}
    raise UntranslatableRequest("tool_choice", f"cannot translate {choice!r}")
