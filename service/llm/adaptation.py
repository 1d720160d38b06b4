"""Learns from an upstream's refusal which parameter it does not take, and adapts to it.

Servers name what they refuse in different shapes: OpenAI's ``error.param`` with
``code`` ``unsupported_parameter``/``unsupported_value``; a pydantic-style ``detail``
list with ``loc`` and ``msg`` (llama-cpp-python, vLLM, LiteLLM); LiteLLM's
"does not support parameters: ['seed']"; Gemini's 'Unknown name "additionalProperties"';
llama.cpp's "Unsupported param: …". ``learn`` reads any of them, changes the
``Adaptations`` so the next call leaves out (or rewrites) what was refused, and says
what it changed; it changes nothing when the answer does not name something we sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from service.llm.profiles import (
    MAX_COMPLETION_TOKENS,
    MAX_TOKENS,
    WEAKER_STYLE,
    ResponseFormatStyle,
    UpstreamProfile,
)
from service.llm.request_shape import TOKEN_FIELDS, Adaptations, schema_keywords

# Words by which a server says the request, not the server, is at fault.
_INVALID_REQUEST = re.compile(
    r"unsupported|not supported|does not support|unrecognized|unknown name|unknown field|"
    r"extra inputs are not permitted|extra_forbidden|not permitted|not allowed|"
    r"input should be|invalid_request_error|invalid request|invalid json payload|"
    r"invalid schema|invalid_argument|literal_error|validation error|bad ?request|"
    r"must be one of|is not one of|not a valid|invalid value|invalid type",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"""['"`]([A-Za-z_][A-Za-z0-9_.]*)['"`]""")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# "supports at most 4096 completion tokens", "max_tokens must be less than or equal to 8192".
_STATED_LIMIT = re.compile(
    r"(?:at most|maximum(?: value)?(?: is| of)?|less than or equal to|<=|up to)\s*`?(\d{2,7})",
    re.IGNORECASE,
)
_CONTEXT_OVERFLOW = re.compile(r"context length|context window|context size", re.IGNORECASE)
_STATUSES_THAT_NAME_PARAMETERS = frozenset({400, 404, 415, 422, 500})
# Fields a call cannot do without, and schema keywords no schema means anything without:
# never dropped, even when a message quotes them as context.
_ESSENTIAL = frozenset({"model", "messages"})
_STRUCTURAL_KEYWORDS = frozenset({"type", "properties", "items", "required"})


@dataclass(frozen=True, slots=True)
class UpstreamComplaint:
    """What an error body says, gathered from whatever shape it has."""

    params: tuple[str, ...]
    codes: tuple[str, ...]
    text: str

    @property
    def says_request_invalid(self) -> bool:
        return bool(_INVALID_REQUEST.search(self.text)) or any(
            code.startswith(("unsupported", "invalid")) for code in self.codes
        )


def read_complaint(body: bytes) -> UpstreamComplaint:
    """The params, codes and messages an error body holds (all of them, any nesting)."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return UpstreamComplaint((), (), body[:4096].decode("utf-8", "replace"))
    params: list[str] = []
    codes: list[str] = []
    texts: list[str] = []
    for node in _mappings(data):
        param = node.get("param")
        if isinstance(param, str):
            params.append(param)
        loc = node.get("loc")
        if isinstance(loc, list) and loc and all(isinstance(part, str | int) for part in loc):
            # ["body", "response_format", "type"]: the field under the body.
            names = [str(part) for part in loc if part != "body"]
            if names:
                params.append(names[0])
        code = node.get("code")
        if isinstance(code, str):
            codes.append(code.lower())
        for key in ("message", "msg", "detail", "error", "type", "status"):
            value = node.get(key)
            if isinstance(value, str):
                texts.append(value)
    return UpstreamComplaint(tuple(params), tuple(codes), " | ".join(texts))


def _mappings(node: Any, depth: int = 0) -> Iterator[Mapping[str, Any]]:
    if depth > 6:
        return
    if isinstance(node, Mapping):
        yield node
        for value in node.values():
            yield from _mappings(value, depth + 1)
    elif isinstance(node, list):
        for item in node[:20]:
            yield from _mappings(item, depth + 1)


def learn(
    status: int,
    complaint: UpstreamComplaint,
    payload: Mapping[str, Any],
    response_schema: Mapping[str, Any] | None,
    profile: UpstreamProfile,
    adaptations: Adaptations,
) -> str | None:
    """Adapt to what the answer says was refused; return what changed, or ``None``."""
    if status not in _STATUSES_THAT_NAME_PARAMETERS or not complaint.says_request_invalid:
        return None
    if _CONTEXT_OVERFLOW.search(complaint.text) or "context_length_exceeded" in complaint.codes:
        # About this request's size, not what the server takes: nothing to remember.
        return None
    sent = [name for name in payload if name not in _ESSENTIAL]
    named = _named_fields(complaint, sent)
    keywords = schema_keywords(response_schema) if "response_format" in payload else set()
    keywords -= profile.dropped_schema_keywords | adaptations.dropped_schema_keywords
    keywords -= _STRUCTURAL_KEYWORDS
    # A schema keyword is named in quotes (Gemini, OpenAI's "'minItems' is not permitted").
    keyword = next((word for word in _QUOTED.findall(complaint.text) if word in keywords), None)
    if keyword is None:
        # Some servers name the keyword bare: "additionalProperties is not supported".
        keyword = next((word for word in _WORD.findall(complaint.text) if word in keywords), None)
    if keyword is not None and (not named or named == ["response_format"]):
        adaptations.dropped_schema_keywords.add(keyword)
        return f"leaving {keyword!r} out of response schemas"
    if not named and "response_format" in payload and _names_format_type(complaint.text):
        named = ["response_format"]
    for name in named:
        change = _adapt_field(name, complaint, profile, adaptations)
        if change is not None:
            return change
    return None


def _named_fields(complaint: UpstreamComplaint, sent: list[str]) -> list[str]:
    """The fields we sent that the answer names: as ``param``/``loc`` first, then in its text."""
    named = [param.split(".")[0] for param in complaint.params if param.split(".")[0] in sent]
    if named:
        return list(dict.fromkeys(named))
    quoted = set(_QUOTED.findall(complaint.text))
    words = set(_WORD.findall(complaint.text))
    in_quotes = [name for name in sent if name in quoted]
    return in_quotes or [name for name in sent if name in words]


def _names_format_type(text: str) -> bool:
    # llama-cpp-python: "Input should be 'text' or 'json_object'"; old llama.cpp:
    # 'response_format type must be one of "text" or "json_object"'.
    lowered = text.lower()
    return "json_object" in lowered or "json_schema" in lowered or "response_format" in lowered


def _adapt_field(
    name: str, complaint: UpstreamComplaint, profile: UpstreamProfile, adaptations: Adaptations
) -> str | None:
    if name in TOKEN_FIELDS:
        limit = _stated_limit(complaint.text)
        known = adaptations.output_token_cap
        if limit is not None and (known is None or limit < known):
            adaptations.output_token_cap = limit
            return f"asking for at most {limit} output tokens"
        current = adaptations.token_field or profile.token_field
        other = MAX_COMPLETION_TOKENS if name == MAX_TOKENS else MAX_TOKENS
        if current == name and not _tried(adaptations, other):
            adaptations.token_field = other
            return f"sending the output budget as {other!r} instead of {name!r}"
        adaptations.no_token_field = True
        return "sending no output budget"
    if name == "response_format":
        current = adaptations.response_format or profile.response_format
        weaker = WEAKER_STYLE.get(current)
        if _ONLY_TEXT_OR_JSON_OBJECT.search(complaint.text) and current in _SCHEMA_TYPES:
            # The server names the types it takes: no json_schema of any kind, so step
            # straight to json_object with the schema beside it, which such servers enforce.
            weaker = ResponseFormatStyle.JSON_OBJECT_SCHEMA
        if weaker is None:
            return None
        adaptations.response_format = weaker
        return f"asking for JSON as {weaker.value!r} instead of {current.value!r}"
    if name in adaptations.dropped_fields:
        return None
    adaptations.dropped_fields.add(name)
    return f"leaving {name!r} out"


_ONLY_TEXT_OR_JSON_OBJECT = re.compile(r"""['"]text['"]\s+or\s+['"]json_object['"]""")
_SCHEMA_TYPES = frozenset({ResponseFormatStyle.JSON_SCHEMA_STRICT, ResponseFormatStyle.JSON_SCHEMA})


def _tried(adaptations: Adaptations, field: str) -> bool:
    # The field was already in use and refused: going back would loop.
    return adaptations.token_field is not None and adaptations.token_field != field


def _stated_limit(text: str) -> int | None:
    found = _STATED_LIMIT.search(text)
    return int(found.group(1)) if found else None
