"""The classify task: answer one yes/no rubric question per label about a text."""

from __future__ import annotations

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


def _verdicts_in(answer: dict[str, Any], names: list[str]) -> dict[str, bool]:
    """Each named label's ``match``; reject unknown, missing or contradicting entries."""
    entries = answer.get("labels")
    if not isinstance(entries, list):
        raise AnswerRejected('the answer has no "labels" list')
    verdicts: dict[str, bool] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise AnswerRejected("a label entry is not an object")
        name, match = entry.get("name"), entry.get("match")
        if name not in names or not isinstance(match, bool):
            raise AnswerRejected(f"a label entry is not a known name with a boolean match: {entry}")
        if verdicts.get(name, match) != match:
            raise AnswerRejected(f"label {name!r} is answered both true and false")
        verdicts[name] = match
    missing = [name for name in names if name not in verdicts]
    if missing:
        raise AnswerRejected(f"the answer has no verdict for {missing}")
    return verdicts


class ClassifyTask(Task[ClassifyRequest]):
    """Ask for one ``{"name", "match"}`` per label and return them in the given order."""

    name = "classify"
    request_model = ClassifyRequest

    def output_schema(self, request: ClassifyRequest) -> dict[str, Any]:
        names = [label.name for label in request.labels]
        verdict = strict_object(
            {"name": {"type": "string", "enum": names}, "match": {"type": "boolean"}}
        )
        return strict_object(
            {
                "labels": {
                    "type": "array",
                    "items": verdict,
                    "minItems": len(names),
                    "maxItems": len(names),
                }
            }
        )

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
        verdicts = _verdicts_in(answer, names)
        return {"labels": [{"name": name, "match": verdicts[name]} for name in names]}
