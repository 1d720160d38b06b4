"""The extract task: find labelled spans in a text and ground each one in the text itself."""

from __future__ import annotations

import bisect
import unicodedata
from collections.abc import Iterable
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, StrictStr, ValidationInfo, field_validator

from tasks.base import (
    DEFAULT_LIMITS,
    AnswerRejected,
    Task,
    TaskRequest,
    check_label_name,
    limits_from,
    strict_object,
)
from tasks.grounding import GroundedEntity, Mention, ground_mentions
from tasks.prompting import render_prompt

OffsetUnit = Literal["codepoint", "utf16", "utf8"]
# Sizing of an extract call's output (see ``output_budget_for``).
ENVELOPE_TOKENS = 64
TOKENS_PER_ENTITY = 16
CHARS_PER_MENTION = 16
MIN_ENTITIES = 16
MAX_PASSES = 3


class ExtractRequest(TaskRequest):
    """An extract body: the text and the entity labels to look for, each with a description."""

    model: Literal["extract"]
    entities: Annotated[dict[StrictStr, StrictStr], Field(min_length=1)]
    offset_unit: OffsetUnit = "codepoint"
    # Extraction runs this many times over the text; later passes add the spans the
    # earlier ones missed (recall at the price of more calls).
    passes: Annotated[int, Field(ge=1, le=MAX_PASSES)] = 1

    @field_validator("entities", mode="before")
    @classmethod
    def _labels_are_bounded(cls, entities: Any, info: ValidationInfo) -> Any:
        # Counted before the labels are validated one by one, which a huge object makes slow.
        limit = limits_from(info).max_entity_labels
        if isinstance(entities, dict) and len(entities) > limit:
            raise ValueError(f"{len(entities)} entity labels given; the limit is {limit}")
        return entities

    @field_validator("entities")
    @classmethod
    def _labels_are_named(cls, entities: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        limits = limits_from(info)
        for label in entities:
            check_label_name(label, limits, "an entity label")
        return entities


def _label_key(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).split()).casefold()


def _type_resolver(labels: Iterable[str]) -> dict[str, str]:
    """The label each spelling of a type stands for: itself, or its folded form if unique."""
    resolver: dict[str, str] = {}
    folded: dict[str, list[str]] = {}
    for label in labels:
        resolver[label] = label
        folded.setdefault(_label_key(label), []).append(label)
    for key, names in folded.items():
        if len(names) == 1:
            resolver.setdefault(key, names[0])
    return resolver


def _resolve_type(resolver: dict[str, str], entity_type: str) -> str | None:
    return resolver.get(entity_type) or resolver.get(_label_key(entity_type))


def _mention_items(answer: dict[str, Any]) -> list[tuple[Any, Any]]:
    """The ``(type, text)`` pairs of an answer: a list of objects, or type → span(s)."""
    entities = answer.get("entities")
    if isinstance(entities, dict):
        pairs: list[tuple[Any, Any]] = []
        for entity_type, spans in entities.items():
            for span in spans if isinstance(spans, list) else [spans]:
                pairs.append((entity_type, span))
        return pairs
    if not isinstance(entities, list):
        raise AnswerRejected('the answer has no "entities" list')
    return [
        (entity.get("type"), entity.get("text")) if isinstance(entity, dict) else (None, None)
        for entity in entities
    ]


def read_mentions(answer: dict[str, Any], labels: Iterable[str]) -> tuple[list[Mention], int]:
    """The mentions of asked-for types, and how many items were not mentions at all.

    Type names are matched as given, else after trimming and case-folding; an item
    of a type not asked for is dropped; an item that is not a typed string counts as
    one that could not be grounded.
    """
    resolver = _type_resolver(labels)
    mentions: list[Mention] = []
    malformed = 0
    for entity_type, span in _mention_items(answer):
        if not isinstance(entity_type, str) or not isinstance(span, str):
            malformed += 1
            continue
        label = _resolve_type(resolver, entity_type)
        if label is not None:
            mentions.append(Mention(label, span))
    return mentions, malformed


def ground_entities(
    text: str, labels: Iterable[str], mentions: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """The entities of ``(type, span)`` mentions of the asked-for labels, as result objects."""
    asked = set(labels)
    grounding = ground_mentions(text, [Mention(t, span) for t, span in mentions if t in asked])
    return [_entity_object(entity) for entity in grounding.entities]


def _entity_object(entity: GroundedEntity) -> dict[str, Any]:
    return {
        "type": entity.type,
        "text": entity.text,
        "start": entity.start,
        "end": entity.end,
        "alignment": entity.alignment,
    }


def converted_offsets(text: str, offsets: Iterable[int], unit: OffsetUnit) -> dict[int, int]:
    """Each code-point offset of ``text`` in ``unit``, walking the text once in order."""
    wanted = sorted(set(offsets))
    if unit == "codepoint":
        return {offset: offset for offset in wanted}
    encoding = "utf-16-le" if unit == "utf16" else "utf-8"
    width = 2 if unit == "utf16" else 1
    converted: dict[int, int] = {}
    position = total = 0
    for offset in wanted:
        total += len(text[position:offset].encode(encoding, "surrogatepass")) // width
        converted[offset] = total
        position = offset
    return converted


def merge_entities(found: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``found`` in text order with each mention once: of two spans of one type that
    overlap (the same mention seen by two overlapping chunks), the longer is kept."""
    kept: list[dict[str, Any]] = []
    last_of_type: dict[str, int] = {}
    for entity in sorted(found, key=lambda e: (e["start"], e["start"] - e["end"])):
        index = last_of_type.get(entity["type"])
        if index is not None and kept[index]["end"] > entity["start"]:
            if entity["end"] - entity["start"] > kept[index]["end"] - kept[index]["start"]:
                kept[index] = entity
            continue
        last_of_type[entity["type"]] = len(kept)
        kept.append(entity)
    return sorted(kept, key=lambda e: (e["start"], e["end"]))


def add_new_spans(
    kept: list[dict[str, Any]], candidates: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``kept`` with the ``candidates`` that overlap none of its spans, in text order."""
    spans = sorted((e["start"], e["end"]) for e in kept)
    starts = [start for start, _ in spans]
    added = list(kept)
    for entity in candidates:
        at = bisect.bisect_right(starts, entity["start"])
        before = spans[at - 1] if at else None
        after = spans[at] if at < len(spans) else None
        if (before and before[1] > entity["start"]) or (after and after[0] < entity["end"]):
            continue
        spans.insert(at, (entity["start"], entity["end"]))
        starts.insert(at, entity["start"])
        added.append(entity)
    return sorted(added, key=lambda e: (e["start"], e["end"]))


def in_offset_unit(text: str, result: dict[str, Any], unit: OffsetUnit) -> dict[str, Any]:
    """``result`` with its entities' code-point offsets of ``text`` given in ``unit``."""
    if unit == "codepoint":
        return result
    entities = result["entities"]
    offsets = [entity["start"] for entity in entities] + [entity["end"] for entity in entities]
    converted = converted_offsets(text, offsets, unit)
    for entity in entities:
        entity["start"], entity["end"] = converted[entity["start"]], converted[entity["end"]]
    return result


def output_budget_for(text: str, cap: int) -> tuple[int, int]:
    """The output token budget and the most entities an extract answer may list.

    Each listed entity costs about ``TOKENS_PER_ENTITY`` tokens; a text cannot hold
    more mentions than about one per ``CHARS_PER_MENTION`` characters, so both grow
    with the text and stop at the cap, which keeps a model repeating one entity from
    running to its own limit.
    """
    most_entities = max(MIN_ENTITIES, len(text) // CHARS_PER_MENTION)
    budget = min(cap, ENVELOPE_TOKENS + most_entities * TOKENS_PER_ENTITY)
    return budget, max(MIN_ENTITIES, min(most_entities, budget // TOKENS_PER_ENTITY))


class ExtractTask(Task[ExtractRequest]):
    """Ask for ``{"entities": [{"type", "text"}]}`` and return grounded spans with offsets."""

    name = "extract"
    request_model = ExtractRequest

    def output_schema(self, request: ExtractRequest) -> dict[str, Any]:
        entity = strict_object(
            {
                "type": {"type": "string", "enum": list(request.entities)},
                "text": {"type": "string"},
            }
        )
        # Bounded by the default cap; the call's own cap only lowers the budget further.
        _, most_entities = output_budget_for(request.text, DEFAULT_LIMITS.max_output_tokens)
        entities = {"type": "array", "items": entity, "maxItems": most_entities}
        return strict_object({"entities": entities})

    def render_messages(self, request: ExtractRequest) -> list[dict[str, str]]:
        return render_prompt(
            self.name,
            text=request.text,
            entities=list(request.entities.items()),
            instructions=request.instructions,
            schema=orjson.dumps(self.output_schema(request)).decode(),
        )

    def postprocess(self, request: ExtractRequest, answer: dict[str, Any]) -> dict[str, Any]:
        mentions, malformed = read_mentions(answer, request.entities)
        grounding = ground_mentions(request.text, mentions)
        entities = [_entity_object(entity) for entity in grounding.entities]
        result = {"entities": entities, "ungrounded": grounding.ungrounded + malformed}
        return in_offset_unit(request.text, result, request.offset_unit)

    def output_budget(self, request: ExtractRequest, cap: int) -> int:
        return output_budget_for(request.text, cap)[0]
