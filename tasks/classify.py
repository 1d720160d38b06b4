"""The classify task: answer one yes/no rubric question per label about a text."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from tasks.base import (
    AnswerRejected,
    Task,
    TaskRequest,
    check_label_name,
    limits_from,
    refuse_many_unknown_fields,
    strict_object,
)
from tasks.prompting import render_prompt


class LabelRubric(BaseModel):
    """One label and the yes/no question that decides whether it matches."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str
    rubric: Annotated[str, Field(min_length=1)]
    # How the verdicts of the chunks of a long text combine: any chunk, all, or most.
    aggregate: Literal["any", "all", "majority"] = "any"

    @model_validator(mode="before")
    @classmethod
    def _few_unknown_fields(cls, data: Any) -> Any:
        return refuse_many_unknown_fields(cls, data)


class ClassifyRequest(TaskRequest):
    """A classify body: the text and the labels, names unique, each with its rubric."""

    model: Literal["classify"]
    labels: Annotated[list[LabelRubric], Field(min_length=1)]

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_are_bounded(cls, labels: Any, info: ValidationInfo) -> Any:
        # Counted before the labels are validated one by one, which a huge list makes slow.
        limit = limits_from(info).max_labels
        if isinstance(labels, list) and len(labels) > limit:
            raise ValueError(f"{len(labels)} labels given; the limit is {limit}")
        return labels

    @field_validator("labels")
    @classmethod
    def _labels_are_unique(
        cls, labels: list[LabelRubric], info: ValidationInfo
    ) -> list[LabelRubric]:
        limits = limits_from(info)
        seen: set[str] = set()
        for label in labels:
            check_label_name(label.name, limits, "a label name")
            if not label.rubric.strip():
                raise ValueError(f"the rubric of label {label.name!r} is empty")
            if label.name in seen:
                raise ValueError(f"label name {label.name!r} is given twice")
            seen.add(label.name)
        return labels


# Sizing of a classify call's output: the JSON around the answer, and per label its
# quoted name (about two characters a token, to be safe) and a boolean.
ENVELOPE_TOKENS = 64
TOKENS_PER_LABEL = 8
CHARS_PER_NAME_TOKEN = 2

_NAME_FIELDS = ("name", "label")
_MATCH_FIELDS = ("match", "matches", "value")
_YES = frozenset({"true", "yes", "y"})
_NO = frozenset({"false", "no", "n"})


def label_key(name: str) -> str:
    """A label name as a tolerant reader compares it: trimmed, spaces collapsed, case-folded."""
    return " ".join(unicodedata.normalize("NFKC", name).split()).casefold()


def _verdict(value: Any) -> bool | None:
    """A boolean, or "yes"/"no"/"true"/"false" in any case; ``None`` for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().casefold()
        if word in _YES:
            return True
        if word in _NO:
            return False
    return None


def _pairs_in(answer: dict[str, Any]) -> list[tuple[Any, Any]]:
    """``(name, verdict)`` pairs of any shape a model gives: keyed object, list, or flat."""
    entries = answer.get("labels")
    if isinstance(entries, dict):
        return list(entries.items())
    if isinstance(entries, list):
        pairs = []
        for entry in entries:
            if isinstance(entry, dict):
                name = next((entry[key] for key in _NAME_FIELDS if key in entry), None)
                match = next((entry[key] for key in _MATCH_FIELDS if key in entry), None)
                pairs.append((name, match))
        return pairs
    return list(answer.items())


def read_verdicts(answer: dict[str, Any], names: list[str]) -> dict[str, bool]:
    """Each named label's verdict, read tolerantly; reject an answer missing any of them.

    Names match as given, else after trimming, collapsing spaces and case-folding
    (when that leaves them unambiguous). Labels not asked about are dropped; a label
    answered both true and false counts as not answered.
    """
    by_key: dict[str, list[str]] = {}
    for name in names:
        by_key.setdefault(label_key(name), []).append(name)
    exact = set(names)
    verdicts: dict[str, bool] = {}
    contradicted: set[str] = set()
    for raw_name, raw_verdict in _pairs_in(answer):
        if not isinstance(raw_name, str):
            continue
        if raw_name in exact:
            name = raw_name
        else:
            matches = by_key.get(label_key(raw_name), [])
            if len(matches) != 1:
                continue
            name = matches[0]
        verdict = _verdict(raw_verdict)
        if verdict is None:
            continue
        if verdicts.setdefault(name, verdict) != verdict:
            contradicted.add(name)
    missing = [name for name in names if name not in verdicts or name in contradicted]
    if missing:
        listed = ", ".join(repr(name) for name in missing)
        raise AnswerRejected(f"the answer has no true/false verdict for label(s) {listed}")
    return verdicts


class ClassifyTask(Task[ClassifyRequest]):
    """Ask for ``{"labels": {name: bool}}`` and return ``{"name", "match"}`` in the given order.

    An object keyed by label name is what a grammar enforces exactly: a list of
    names let constrained decoding repeat one name and drop another.
    """

    name = "classify"
    request_model = ClassifyRequest

    def output_schema(self, request: ClassifyRequest) -> dict[str, Any]:
        verdicts = {label.name: {"type": "boolean"} for label in request.labels}
        return strict_object({"labels": strict_object(verdicts)})

    def render_messages(self, request: ClassifyRequest) -> list[dict[str, str]]:
        return render_prompt(
            self.name,
            text=request.text,
            labels=[(label.name, label.rubric) for label in request.labels],
            instructions=request.instructions,
            schema=orjson.dumps(self.output_schema(request)).decode(),
        )

    def postprocess(self, request: ClassifyRequest, answer: dict[str, Any]) -> dict[str, Any]:
        names = [label.name for label in request.labels]
        verdicts = read_verdicts(answer, names)
        return {"labels": [{"name": name, "match": verdicts[name]} for name in names]}

    def output_budget(self, request: ClassifyRequest, cap: int) -> int:
        per_label = sum(
            TOKENS_PER_LABEL + len(label.name) // CHARS_PER_NAME_TOKEN for label in request.labels
        )
        return min(cap, ENVELOPE_TOKENS + per_label)
