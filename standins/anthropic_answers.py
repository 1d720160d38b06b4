"""What the Anthropic batches stand-in checks and answers for the requests of a batch.

``batch_problem`` is what Anthropic refuses a whole create body for (custom_ids, the
shape of each entry); ``request_result`` is one request's result once processed: a
Messages answer computed by ``standins.answers`` (a forced tool gets a ``tool_use``
block whose input answers its ``input_schema``), the error a ``[[errored:TYPE]]``
directive asks for, or an ``invalid_request_error`` for params Messages refuses.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from standins import answers

_CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ERRORED = re.compile(r"\[\[errored:(?P<type>[a-z_]+)\]\]")
MAX_REQUESTS = 100_000


def batch_problem(entries: object) -> str | None:
    """Why a create body is refused as a whole, as Anthropic checks it up front."""
    if not isinstance(entries, list) or not entries:
        return "requests: a non-empty list is required"
    if len(entries) > MAX_REQUESTS:
        return f"requests: at most {MAX_REQUESTS} requests per batch"
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        custom_id = entry.get("custom_id") if isinstance(entry, dict) else None
        if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
            return f"requests.{index}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$"
        if custom_id in seen:
            return f"requests.{index}.custom_id: {custom_id} is used more than once"
        seen.add(custom_id)
        if not isinstance(entry.get("params"), dict):
            return f"requests.{index}.params: an object is required"
    return None


def request_result(params: Any, text: str, sequence: int) -> dict[str, Any]:
    """One processed request's result: its Messages answer, or the error it gets."""
    errored = _ERRORED.search(text)
    if errored:
        return _errored(errored["type"], f"stand-in fault: {errored['type']}")
    model, budget, messages = params.get("model"), params.get("max_tokens"), params.get("messages")
    if not isinstance(model, str) or not isinstance(messages, list) or not messages:
        return _errored("invalid_request_error", "model and messages are required")
    if not isinstance(budget, int) or budget < 1:
        return _errored("invalid_request_error", "max_tokens: Field required")
    system = params.get("system")
    chat = [{"role": "system", "content": system}] if isinstance(system, str) else []
    chat_body: dict[str, Any] = {"messages": chat + messages}
    choice = params.get("tool_choice") or {}
    tool = next(
        (
            t
            for t in params.get("tools") or []
            if choice.get("type") == "tool" and t.get("name") == choice.get("name")
        ),
        None,
    )
    if tool is not None:
        spec = {"name": tool["name"], "schema": tool.get("input_schema")}
        chat_body["response_format"] = {"type": "json_schema", "json_schema": spec}
    content = answers.chat_content(chat_body)
    if tool is not None:
        use = {
            "type": "tool_use",
            "id": f"toolu_{sequence:06d}",
            "name": tool["name"],
            "input": orjson.loads(content),
        }
        blocks, stop_reason = [use], "tool_use"
    else:
        blocks, stop_reason = [{"type": "text", "text": content}], "end_turn"
    message = {
        "id": f"msg_{sequence:06d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": answers.word_count(answers.message_text(chat_body["messages"])),
            "output_tokens": answers.word_count(content),
        },
    }
    return {"type": "succeeded", "message": message}


def _errored(kind: str, message: str) -> dict[str, Any]:
    return {
        "type": "errored",
        "error": {"type": "error", "error": {"type": kind, "message": message}},
    }
