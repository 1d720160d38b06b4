"""What every task shares: the common request fields, the limits and the ``Task`` interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


@dataclass(frozen=True, slots=True)
class TaskLimits:
    """Size limits a task body must respect; the service may pass its own through validation."""

    max_text_chars: int = 1_000_000
    max_labels: int = 100
    max_entity_labels: int = 100
    max_label_name_chars: int = 200
    # Output tokens one call may ask for (``TEXTBATCH_LLM_MAX_OUTPUT_TOKENS``); a line's
    # ``max_tokens`` above it is refused.
    max_output_tokens: int = 16_384


DEFAULT_LIMITS = TaskLimits()

LIMITS_CONTEXT_KEY = "limits"
# Past this many unknown fields an object is refused as a whole instead of field by field,
# so a body with a million stray keys costs one error, not a million.
MAX_UNKNOWN_FIELDS = 20
# Far above any model's output, yet a number every upstream can take; seeds are 64-bit.
MAX_TOKENS_LIMIT = 1_000_000
SEED_BOUND = 2**63
# Task lines are deterministic unless the line says otherwise: the server's own
# default temperature (0.8 on llama.cpp) made identical lines disagree.
DEFAULT_TEMPERATURE = 0.0
DEFAULT_SEED = 7


def limits_from(info: ValidationInfo) -> TaskLimits:
    """The limits passed as validation context, or the defaults when none were."""
    context = info.context
    if isinstance(context, dict):
        limits = context.get(LIMITS_CONTEXT_KEY)
        if isinstance(limits, TaskLimits):
            return limits
    return DEFAULT_LIMITS


def refuse_many_unknown_fields(model: type[BaseModel], data: Any) -> Any:
    """``data`` as it is, unless it is an object with over ``MAX_UNKNOWN_FIELDS`` unknown fields."""
    if isinstance(data, dict) and len(data) > len(model.model_fields) + MAX_UNKNOWN_FIELDS:
        unknown = len(data) - sum(1 for name in model.model_fields if name in data)
        raise ValueError(f"{unknown} unknown fields given; unknown fields are not allowed")
    return data


def check_label_name(name: str, limits: TaskLimits, what: str) -> None:
    """Reject a blank or over-long label name; ``what`` names it in the message."""
    if not name.strip():
        raise ValueError(f"{what} must not be empty")
    if len(name) > limits.max_label_name_chars:
        raise ValueError(
            f"{what} {name[:40]!r}... is over {limits.max_label_name_chars} characters"
        )


class AnswerRejected(ValueError):
    """The model's answer matches the schema but cannot be turned into a valid result."""


class UnknownTaskModel(ValueError):
    """A body's ``model`` names no task this service runs."""


class TaskRequest(BaseModel):
    """Fields every task body takes; each task adds its own and pins ``model``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    model: str
    text: str
    instructions: str | None = None
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    top_p: Annotated[float | None, Field(gt=0, le=1)] = None
    seed: Annotated[int | None, Field(ge=-SEED_BOUND, lt=SEED_BOUND)] = None

    @model_validator(mode="before")
    @classmethod
    def _few_unknown_fields(cls, data: Any) -> Any:
        return refuse_many_unknown_fields(cls, data)

    @field_validator("text")
    @classmethod
    def _text_is_present_and_bounded(cls, text: str, info: ValidationInfo) -> str:
        if not text.strip():
            raise ValueError("text must not be empty")
        limit = limits_from(info).max_text_chars
        if len(text) > limit:
            raise ValueError(f"text has {len(text)} characters; the limit is {limit}")
        return text


RequestT = TypeVar("RequestT", bound=TaskRequest)


class Task(ABC, Generic[RequestT]):
    """One text task: how to validate its body, prompt the model and read the answer."""

    name: str
    request_model: type[RequestT]

    @abstractmethod
    def output_schema(self, request: RequestT) -> dict[str, Any]:
        """The JSON Schema the model's answer must match, usable as a strict structured output."""

    @abstractmethod
    def render_messages(self, request: RequestT) -> list[dict[str, str]]:
        """The system and user messages that ask the model for this request."""

    @abstractmethod
    def postprocess(self, request: RequestT, answer: dict[str, Any]) -> dict[str, Any]:
        """Turn a schema-valid answer into the result; raise ``AnswerRejected`` if it cannot."""

    @abstractmethod
    def output_budget(self, request: RequestT, cap: int) -> int:
        """The output tokens to ask for, sized from the request, at most ``cap``."""


AnyTask = Task[Any]


def strict_object(properties: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema object with every property required and no others allowed."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
