"""The fast first check of a batch line: one compiled validator for the common, valid case.

Checking a line field by field in Python (``validation``) costs far more
than parsing it. Most lines are task lines that are simply valid, so each line
first meets a validator compiled once from typed dicts, run inside pydantic's
core: it admits a line only when the full check could find no fault in it.
Anything it does not admit (a fault, a pass-through line, a prompt reference,
an unusual shape) gets the full check, which names every fault; the two never
disagree on a line this one admits (tested property by property).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Literal, NotRequired

from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from service.intake.validation import CHAT_COMPLETIONS
from tasks.base import DEFAULT_LIMITS, MAX_TOKENS_LIMIT, SEED_BOUND
from tasks.extract import MAX_PASSES

# Not blank as ``str.strip`` sees it: Unicode White_Space plus the four separators
# U+001C..U+001F that Python also strips.
NOT_BLANK = r"[^\s\x1c-\x1f]"
CUSTOM_ID = r"^[A-Za-z0-9_.:\-]{1,64}$"
# A large line with a large shape is left to the full check, which refuses it in one
# fault: the compiled validator would name every unknown key of an object with a
# million, or every item of a list that long. No task field is near these sizes.
LARGE_LINE_BYTES = 64 * 1024
MAX_SMALL_SIZE = 128

_STRICT = ConfigDict(extra="forbid", strict=True)
LabelName = Annotated[str, Field(pattern=NOT_BLANK, max_length=DEFAULT_LIMITS.max_label_name_chars)]


@with_config(_STRICT)
class _Label(TypedDict):
    name: LabelName
    rubric: Annotated[str, Field(pattern=NOT_BLANK)]
    aggregate: NotRequired[Literal["any", "all", "majority"]]


def _unique_names(labels: list[_Label]) -> list[_Label]:
    if len(labels) > 1 and len({label["name"] for label in labels}) != len(labels):
        raise ValueError("label names repeat")
    return labels


def _line_validators(
    max_text_chars: int, max_output_tokens: int
) -> tuple[TypeAdapter[Any], TypeAdapter[Any]]:
    """Validators of one line and of a list of lines (built here, where their types live)."""
    Text = Annotated[str, Field(pattern=NOT_BLANK, max_length=max_text_chars)]
    max_tokens_limit = min(max_output_tokens, MAX_TOKENS_LIMIT)

    @with_config(_STRICT)
    class _Common(TypedDict):
        text: Text
        instructions: NotRequired[str | None]
        temperature: NotRequired[Annotated[float | None, Field(ge=0, le=2)]]
        top_p: NotRequired[Annotated[float | None, Field(gt=0, le=1)]]
        seed: NotRequired[Annotated[int | None, Field(ge=-SEED_BOUND, lt=SEED_BOUND)]]

    class _Summarize(_Common):
        model: Literal["summarize"]
        max_tokens: NotRequired[Annotated[int | None, Field(gt=0, le=max_tokens_limit)]]

    class _Extract(_Common):
        model: Literal["extract"]
        entities: Annotated[
            dict[LabelName, str],
            Field(min_length=1, max_length=DEFAULT_LIMITS.max_entity_labels),
        ]
        offset_unit: NotRequired[Literal["codepoint", "utf16", "utf8"]]
        passes: NotRequired[Annotated[int, Field(ge=1, le=MAX_PASSES)]]

    class _Classify(_Common):
        model: Literal["classify"]
        labels: Annotated[
            list[_Label],
            Field(min_length=1, max_length=DEFAULT_LIMITS.max_labels),
            AfterValidator(_unique_names),
        ]

    @with_config(_STRICT)
    class _Line(TypedDict):
        custom_id: Annotated[str, Field(pattern=CUSTOM_ID)]
        method: Literal["POST"]
        url: Literal["/v1/chat/completions"]
        body: Annotated[_Summarize | _Extract | _Classify, Field(discriminator="model")]

    return TypeAdapter(_Line), TypeAdapter(list[_Line])


@lru_cache(maxsize=8)
def _validators_for(
    max_text_chars: int, max_output_tokens: int
) -> tuple[TypeAdapter[Any], TypeAdapter[Any]]:
    return _line_validators(max_text_chars, max_output_tokens)


class LineAdmission:
    """Admits lines of one submission that certainly pass the full line check."""

    def __init__(
        self,
        endpoint: str | None,
        max_text_chars: int,
        max_output_tokens: int = DEFAULT_LIMITS.max_output_tokens,
    ) -> None:
        # A batch bound to another endpoint has no task lines to admit.
        self._validators = (
            _validators_for(max_text_chars, max_output_tokens)
            if endpoint in (None, CHAT_COMPLETIONS)
            else None
        )

    def admits(self, line: Any, size: int) -> bool:
        """Whether the parsed ``line`` (``size`` bytes as sent) is valid as it stands.

        Its custom_id's uniqueness within the batch is the caller's to check.
        """
        if self._validators is None:
            return False
        if size > LARGE_LINE_BYTES and not _small_shape(line):
            return False
        try:
            self._validators[0].validate_python(line)
        except ValidationError:
            return False
        return True

    def admits_all(self, lines: list[Any], largest: int) -> bool:
        """Whether every parsed line of ``lines`` is admitted, checked in one call.

        ``largest`` is the size of the largest as sent; a block with a large line is
        left to ``admits``, line by line.
        """
        if self._validators is None or largest > LARGE_LINE_BYTES:
            return False
        try:
            self._validators[1].validate_python(lines)
        except ValidationError:
            return False
        return True


def _small_shape(line: Any) -> bool:
    """Whether no object or list of the line, down to the body's list items, is large."""
    if not isinstance(line, dict) or len(line) > MAX_SMALL_SIZE:
        return False
    body = line.get("body")
    if not isinstance(body, dict) or len(body) > MAX_SMALL_SIZE:
        return False
    for value in body.values():
        if isinstance(value, dict | list) and len(value) > MAX_SMALL_SIZE:
            return False
        if isinstance(value, list) and any(
            isinstance(item, dict) and len(item) > MAX_SMALL_SIZE for item in value
        ):
            return False
    return True
