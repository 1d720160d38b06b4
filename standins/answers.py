"""Deterministic answers of the stand-in upstream, derived only from the request."""

from __future__ import annotations

import hashlib
import re
import struct
from typing import Any

import orjson

_TEXT_BLOCK = re.compile(r"<text>\n(.*?)\n</text>", re.DOTALL)
_ENTITY_WORD = re.compile(r"\b[A-Z][\w'-]*|\b\d+(?:[.,]\d+)*\b")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_MAX_ENTITIES = 5


def word_count(text: str) -> int:
    """The stand-in's token count: whitespace-separated words."""
    return len(text.split())


def request_text(body: dict[str, Any]) -> str:
    """The text a call carries: its messages, prompt or input, for faults and matching."""
    if "messages" in body:
        return message_text(body["messages"])
    raw = body.get("prompt", body.get("input", ""))
    return "\n".join(map(str, raw)) if isinstance(raw, list) else str(raw)


def chat_content(body: dict[str, Any], *, wrong_schema: bool = False) -> str:
    """The assistant message for a chat request: JSON when a format asks for it, else an echo."""
    messages = body.get("messages")
    format_ = body.get("response_format")
    format_ = format_ if isinstance(format_, dict) else {}
    spec = format_.get("json_schema")
    spec = spec if isinstance(spec, dict) else {}
    echo = last_user_message(messages)[:50]
    if format_.get("type") == "json_schema" and isinstance(spec.get("schema"), dict):
        if wrong_schema:
            return orjson.dumps(wrong_answer()).decode()
        value = structured_answer(str(spec.get("name", "")), spec["schema"], input_text(messages))
        return orjson.dumps(value).decode()
    if wrong_schema or format_.get("type") == "json_object":
        return orjson.dumps({"echo": echo}).decode()
    return "echo: " + echo


def message_text(messages: object) -> str:
    """Every message content joined, for word counts and fault directives."""
    if not isinstance(messages, list):
        return ""
    return "\n".join(_content(message) for message in messages)


def last_user_message(messages: object) -> str:
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _content(message)
    return ""


def input_text(messages: object) -> str:
    """The task's input: the ``<text>`` block of the last user message, or all of it."""
    user = last_user_message(messages)
    found = _TEXT_BLOCK.search(user)
    return found.group(1) if found else user


def structured_answer(name: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    """A JSON value valid for ``schema``; the three task schemas get meaningful content."""
    answer = minimal_instance(schema, schema)
    if not isinstance(answer, dict):
        return {"value": answer}
    properties = schema.get("properties", {})
    if name == "extract" and "entities" in properties:
        answer["entities"] = _entities(properties["entities"], schema, text)
    elif name == "summarize" and "summary" in properties:
        answer["summary"] = _bounded(first_sentence(text), properties["summary"])
    elif name == "classify" and "labels" in properties:
        answer["labels"] = _labels(properties["labels"], schema, text)
    return answer


def wrong_answer() -> dict[str, Any]:
    """Valid JSON that matches none of the task schemas."""
    return {"wrong": True}


def first_sentence(text: str) -> str:
    stripped = text.strip()
    return _SENTENCE_END.split(stripped, maxsplit=1)[0] if stripped else ""


def embedding(text: str, dimensions: int = 8) -> list[float]:
    """A fixed vector per text, with components in [-1, 1]."""
    digest = hashlib.sha256(text.encode()).digest()
    values = struct.unpack(f">{dimensions}H", digest[: 2 * dimensions])
    return [round(value / 32767.5 - 1.0, 6) for value in values]


def minimal_instance(schema: Any, root: dict[str, Any]) -> Any:
    """The smallest plain value that ``schema`` accepts (for the schemas tasks use)."""
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        return minimal_instance(_resolve(schema["$ref"], root), root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if schema.get(combinator):
            return minimal_instance(schema[combinator][0], root)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties", {})
        return {
            key: minimal_instance(properties.get(key, {}), root)
            for key in schema.get("required", [])
        }
    if kind == "array":
        count = int(schema.get("minItems", 0))
        return [minimal_instance(schema.get("items", {}), root) for _ in range(count)]
    if kind == "string":
        return "x" * max(1, int(schema.get("minLength", 1)))
    if kind in ("integer", "number"):
        low = float(schema.get("minimum", schema.get("exclusiveMinimum")) or 0)
        value = max(0.0, low + 1 if "exclusiveMinimum" in schema else low)
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return False
    return None


def _entities(array_schema: dict[str, Any], root: dict[str, Any], text: str) -> list[Any]:
    item_schema = _resolve_all(array_schema.get("items", {}), root)
    type_schema = _resolve_all(item_schema.get("properties", {}).get("type", {}), root)
    labels = type_schema.get("enum") or ["other"]
    words = list(dict.fromkeys(_ENTITY_WORD.findall(text)))[:_MAX_ENTITIES]
    entities = []
    for index, word in enumerate(words):
        item = minimal_instance(item_schema, root)
        item.update(type=labels[index % len(labels)], text=word)
        entities.append(item)
    return entities


def _labels(array_schema: dict[str, Any], root: dict[str, Any], text: str) -> Any:
    if array_schema.get("type") == "object":
        # Classify's shape: one boolean per label name.
        lowered = text.lower()
        return {
            name: bool(name.split()) and name.split()[0].lower() in lowered
            for name in array_schema.get("properties", {})
        }
    item_schema = _resolve_all(array_schema.get("items", {}), root)
    name_schema = _resolve_all(item_schema.get("properties", {}).get("name", {}), root)
    lowered = text.lower()
    labels = []
    for name in name_schema.get("enum", []):
        item = minimal_instance(item_schema, root)
        first_word = str(name).split()[0].lower() if str(name).split() else ""
        item.update(name=name, match=bool(first_word) and first_word in lowered)
        labels.append(item)
    return labels


def _bounded(value: str, string_schema: dict[str, Any]) -> str:
    limit = string_schema.get("maxLength")
    value = value[:limit] if isinstance(limit, int) else value
    return value or "x"


def _resolve_all(schema: Any, root: dict[str, Any]) -> dict[str, Any]:
    while isinstance(schema, dict) and "$ref" in schema:
        schema = _resolve(schema["$ref"], root)
    return schema if isinstance(schema, dict) else {}


def _resolve(ref: str, root: dict[str, Any]) -> Any:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        if part and isinstance(node, dict):
            node = node.get(part.replace("~1", "/").replace("~0", "~"), {})
    return node


def _content(message: object) -> str:
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # Content parts, as newer clients send them.
        return "\n".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def fault_text(body: dict[str, Any]) -> str:
    """The last user message of a chat request, else all of its text: where directives live."""
    return last_user_message(body.get("messages")) or request_text(body)
