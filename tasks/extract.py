"""The extract task: find labelled spans in a text and ground each one in the text itself."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, StrictStr, ValidationInfo, field_validator

from tasks.base import (
    AnswerRejected,
    Task,
    TaskRequest,
    check_label_name,
    limits_from,
    strict_object,
)
from tasks.prompting import render_prompt


class ExtractRequest(TaskRequest):
    """An extract body: the text and the entity labels to look for, each with a description."""

    model: Literal["extract"]
    entities: Annotated[dict[StrictStr, StrictStr], Field(min_length=1)]

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


@dataclass(frozen=True, slots=True, order=True)
class GroundedSpan:
    """A span located in the input: ``text[start:end]`` is its text."""

    start: int
    end: int
    type: str


def _whole_word(text: str, start: int, end: int) -> bool:
    """Whether the span neither starts nor ends inside a word."""
    starts_clean = start == 0 or not (text[start - 1].isalnum() and text[start].isalnum())
    ends_clean = end == len(text) or not (text[end - 1].isalnum() and text[end].isalnum())
    return starts_clean and ends_clean


def _span_patterns(span: str) -> Iterator[re.Pattern[str]]:
    """Ever looser ways to find ``span``: exact, any case, any whitespace, both."""
    literal = re.escape(span)
    spaced = r"\s+".join(re.escape(word) for word in span.split())
    yield re.compile(literal)
    yield re.compile(literal, re.IGNORECASE)
    yield re.compile(spaced)
    yield re.compile(spaced, re.IGNORECASE)


def find_occurrences(text: str, span: str) -> list[tuple[int, int]]:
    """Where ``span`` occurs in ``text`` under the strictest pattern that finds it at all.

    Whole-word occurrences come first so "Ann" finds the name before the "Ann" in "Annual".
    """
    for pattern in _span_patterns(span):
        found = [match.span() for match in pattern.finditer(text) if match.end() > match.start()]
        if found:
            whole = [where for where in found if _whole_word(text, *where)]
            partial = [where for where in found if not _whole_word(text, *where)]
            return whole + partial
    return []


def ground_entities(
    text: str, labels: set[str], mentions: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Locate each ``(type, span)`` mention in ``text``; mentions that are not there are dropped.

    A mention repeated n times takes the first n occurrences of its span, so a
    model listing every mention in order gets every occurrence back.
    """
    occurrences: dict[str, list[tuple[int, int]]] = {}
    used: defaultdict[tuple[str, str], int] = defaultdict(int)
    grounded: set[GroundedSpan] = set()
    for entity_type, raw_span in mentions:
        span = raw_span.strip()
        if entity_type not in labels or not span:
            continue
        if span not in occurrences:
            occurrences[span] = find_occurrences(text, span)
        index = used[(entity_type, span)]
        if index >= len(occurrences[span]):
            continue
        used[(entity_type, span)] = index + 1
        start, end = occurrences[span][index]
        grounded.add(GroundedSpan(start, end, entity_type))
    return [
        {
            "type": span.type,
            "text": text[span.start : span.end],
            "start": span.start,
            "end": span.end,
        }
        for span in sorted(grounded)
    ]


def _mentions_in(answer: dict[str, Any]) -> list[tuple[str, str]]:
    """The ``(type, text)`` pairs of an answer, rejecting any other shape."""
    entities = answer.get("entities")
    if not isinstance(entities, list):
        raise AnswerRejected('the answer has no "entities" list')
    mentions = []
    for entity in entities:
        if not isinstance(entity, dict):
            raise AnswerRejected("an entity is not an object")
        entity_type, span = entity.get("type"), entity.get("text")
        if not isinstance(entity_type, str) or not isinstance(span, str):
            raise AnswerRejected('an entity lacks a string "type" or "text"')
        mentions.append((entity_type, span))
    return mentions


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
        return strict_object({"entities": {"type": "array", "items": entity}})

    def render_messages(self, request: ExtractRequest) -> list[dict[str, str]]:
        return render_prompt(
            self.name,
            text=request.text,
            entities=list(request.entities.items()),
            instructions=request.instructions,
            schema=orjson.dumps(self.output_schema(request)).decode(),
        )

    def postprocess(self, request: ExtractRequest, answer: dict[str, Any]) -> dict[str, Any]:
        mentions = _mentions_in(answer)
        return {"entities": ground_entities(request.text, set(request.entities), mentions)}
