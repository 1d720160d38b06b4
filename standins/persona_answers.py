"""Right answers of the persona stand-ins, derived from the request alone.

What a perfect model answers to each task prompt textbatch sends: the planted names
of ``GAZETTEER`` found in the text (in text order), a label matching when its name
appears in the text as a word, the first sentence as the summary; and the same
content as a careless model bends it when no schema is enforced.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import orjson

from standins import answers

# The names each persona finds, by entity type: whatever the prompt, these and only these.
GAZETTEER: dict[str, tuple[str, ...]] = {
    "person": ("Ann Lee", "Omar Haddad", "O'Neil", "Jordan"),
    "city": ("Lyon", "Porto", "São Paulo"),
    "org": ("Acme Corp", "Globex"),
}
# The personas' tokenizer: about four characters a token, as real ones give for English.
CHARS_PER_TOKEN = 4
_LABEL_LINE = re.compile(r'^- "(?P<name>.*)": ', re.MULTILINE)
_SCHEMA_LINE = re.compile(r"matching this JSON Schema:\n(?P<schema>\{.*\})\s*$", re.MULTILINE)


def tokens(text: str) -> int:
    """The personas' token count: four characters a token, as real tokenizers roughly give."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class TaskAsk:
    """What a chat request asks of the model, read from its prompt and response format."""

    task: str  # extract, classify, summarize, or "" for anything else
    text: str
    names: list[str]  # classify's label names or extract's entity types, in prompt order
    schema: dict[str, Any] | None


def read_ask(body: dict[str, Any]) -> TaskAsk:
    messages = body.get("messages")
    system = _system_message(messages)
    if "information-extraction" in system:
        task = "extract"
    elif "text classifier" in system:
        task = "classify"
    elif "writes faithful, concise summaries" in system:
        task = "summarize"
    else:
        task = ""
    schema = requested_schema(body) or _prompt_schema(system)
    # The schema names the labels or types where it enumerates them; the prompt's list
    # of them is the fallback, for a schema that does not.
    names = _schema_names(task, schema) or [
        match.group("name") for match in _LABEL_LINE.finditer(system)
    ]
    return TaskAsk(task=task, text=answers.input_text(messages), names=names, schema=schema)


def requested_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The schema in ``response_format``: OpenAI's ``json_schema`` or llama-cpp-python's form."""
    format_ = body.get("response_format")
    if not isinstance(format_, dict):
        return None
    spec = format_.get("json_schema")
    if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
        return spec["schema"]
    schema = format_.get("schema")
    return schema if isinstance(schema, dict) else None


def planted_mentions(text: str, types: list[str]) -> list[tuple[str, str]]:
    """``(type, name)`` for each whole-word occurrence of a planted name, in text order."""
    found: list[tuple[int, int, str, str]] = []
    for entity_type in types:
        for name in GAZETTEER.get(entity_type, ()):
            pattern = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)")
            found += [(m.start(), m.end(), entity_type, name) for m in pattern.finditer(text)]
    mentions, taken_to = [], -1
    for start, end, entity_type, name in sorted(found):
        if start >= taken_to:
            mentions.append((entity_type, name))
            taken_to = end
    return mentions


def label_matches(name: str, text: str) -> bool:
    """The personas' verdict: the label's name appears in the text as a word, in any case."""
    return re.search(rf"(?<!\w){re.escape(name.strip())}(?!\w)", text, re.IGNORECASE) is not None


def first_sentence(text: str) -> str:
    return answers.first_sentence(text)


def perturb(span: str) -> str:
    """A span as a careless model copies it: curly quotes, doubled spaces, NFD accents."""
    changed = span.replace("'", "\u2019").replace('"', "\u201c").replace(" ", "  ")
    return unicodedata.normalize("NFD", changed)


def right_answer(ask: TaskAsk) -> dict[str, Any]:
    """The answer a perfect model gives, shaped by the schema the request carries."""
    if ask.task == "extract":
        return _extract_answer(ask, planted_mentions(ask.text, ask.names))
    if ask.task == "classify":
        return _classify_answer(ask, {name: label_matches(name, ask.text) for name in ask.names})
    if ask.task == "summarize":
        return {"summary": first_sentence(ask.text)}
    return {"echo": ask.text[:50]}


def careless_answer(ask: TaskAsk) -> dict[str, Any]:
    """The right content in the shapes a model gives when no schema is enforced."""
    if ask.task == "extract":
        mentions = planted_mentions(ask.text, ask.names)
        return {"entities": [{"type": kind, "text": perturb(span)} for kind, span in mentions]}
    if ask.task == "classify":
        verdicts: dict[str, Any] = {}
        for index, name in enumerate(ask.names):
            match = label_matches(name, ask.text)
            if index % 2 == 0:
                verdicts[name.upper()] = "yes" if match else "no"
            else:
                verdicts[f"  {name.title()} "] = match
        # A label nobody asked for, as models add.
        verdicts["Other"] = True
        return {"labels": verdicts}
    return right_answer(ask)


def _system_message(messages: object) -> str:
    if not isinstance(messages, list):
        return ""
    for message in messages:
        if isinstance(message, dict) and message.get("role") in ("system", "developer"):
            content = message.get("content")
            return content if isinstance(content, str) else answers.message_text([message])
    return ""


def _prompt_schema(system: str) -> dict[str, Any] | None:
    found = _SCHEMA_LINE.search(system)
    if not found:
        return None
    try:
        schema = orjson.loads(found.group("schema"))
    except orjson.JSONDecodeError:
        return None
    return schema if isinstance(schema, dict) else None


def _resolved(schema: Any, root: dict[str, Any]) -> dict[str, Any]:
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        node: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        schema = node
    return schema if isinstance(schema, dict) else {}


def _properties(schema: dict[str, Any] | None) -> dict[str, Any]:
    if schema is None:
        return {}
    properties = schema.get("properties")
    return properties if isinstance(properties, dict) else {}


def _schema_names(task: str, schema: dict[str, Any] | None) -> list[str]:
    """Extract's entity types or classify's label names as the schema enumerates them."""
    root = schema or {}
    properties = _properties(schema)
    if task == "extract":
        item = _resolved(_resolved(properties.get("entities"), root).get("items"), root)
        enum = _resolved(_properties(item).get("type"), root).get("enum")
        return [str(name) for name in enum] if isinstance(enum, list) else []
    if task != "classify":
        return []
    labels = _resolved(properties.get("labels"), root)
    if labels.get("type") == "object":
        return list(_properties(labels))
    item = _resolved(labels.get("items"), root)
    enum = _resolved(_properties(item).get("name"), root).get("enum")
    if isinstance(enum, list):
        return [str(name) for name in enum]
    # An object keyed by label name at the top level.
    return [] if "labels" in properties else list(properties)


def _extract_answer(ask: TaskAsk, mentions: list[tuple[str, str]]) -> dict[str, Any]:
    root = ask.schema or {}
    entities_schema = _resolved(_properties(ask.schema).get("entities", {}), root)
    item_schema = _resolved(entities_schema.get("items", {}), root)
    entities = []
    for entity_type, span in mentions:
        # Any other field the schema requires gets its smallest valid value.
        item = answers.minimal_instance(item_schema, root) if item_schema else {}
        item = item if isinstance(item, dict) else {}
        item.update(type=entity_type, text=span)
        entities.append(item)
    return {"entities": entities}


def _classify_answer(ask: TaskAsk, verdicts: dict[str, bool]) -> dict[str, Any]:
    """Verdicts in the shape the schema asks: a list of entries, or an object keyed by label."""
    root = ask.schema or {}
    properties = _properties(ask.schema)
    labels_schema = _resolved(properties.get("labels"), root)
    if labels_schema.get("type") == "object":
        return {"labels": dict(verdicts)}
    if not labels_schema and verdicts and set(verdicts) <= set(properties):
        return dict(verdicts)
    item_schema = _resolved(labels_schema.get("items", {}), root)
    entries = []
    for name, match in verdicts.items():
        item = answers.minimal_instance(item_schema, root) if item_schema else {}
        item = item if isinstance(item, dict) else {}
        item.update(name=name, match=match)
        entries.append(item)
    return {"labels": entries}
