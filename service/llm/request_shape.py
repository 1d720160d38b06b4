"""Writes a ``ChatRequest`` as the JSON body one upstream takes: its profile plus what it refused.

``Adaptations`` holds what was learned about one (upstream, model) in this process;
``chat_payload`` applies the profile and the adaptations to a request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service.llm.base import ChatRequest
from service.llm.profiles import (
    MAX_COMPLETION_TOKENS,
    MAX_TOKENS,
    ResponseFormatStyle,
    UpstreamProfile,
)

TOKEN_FIELDS = (MAX_TOKENS, MAX_COMPLETION_TOKENS)


@dataclass(slots=True)
class Adaptations:
    """What one upstream refused for one model, on top of its profile."""

    token_field: str | None = None
    # Set once both token fields were refused: no output budget is sent at all.
    no_token_field: bool = False
    dropped_fields: set[str] = field(default_factory=set)
    response_format: ResponseFormatStyle | None = None
    dropped_schema_keywords: set[str] = field(default_factory=set)
    # An output budget the server said it allows at most.
    output_token_cap: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """What was learned, as plain data for logs and reports (empty when nothing was)."""
        learned: dict[str, Any] = {
            "token_field": None if self.no_token_field else self.token_field,
            "no_token_field": self.no_token_field or None,
            "dropped_fields": sorted(self.dropped_fields) or None,
            "response_format": self.response_format.value if self.response_format else None,
            "dropped_schema_keywords": sorted(self.dropped_schema_keywords) or None,
            "output_token_cap": self.output_token_cap,
        }
        return {name: value for name, value in learned.items() if value is not None}


def chat_payload(
    request: ChatRequest,
    *,
    model: str,
    profile: UpstreamProfile,
    adaptations: Adaptations,
    output_token_cap: int,
) -> dict[str, Any]:
    """The body of one chat completion call for ``request``."""
    payload: dict[str, Any] = {"model": model, "messages": request.messages}
    style = adaptations.response_format or profile.response_format
    if request.response_schema is not None and style is not ResponseFormatStyle.NONE:
        dropped = profile.dropped_schema_keywords | adaptations.dropped_schema_keywords
        schema = without_keywords(request.response_schema, dropped)
        payload["response_format"] = _response_format(style, request.schema_name, schema)
    sampling = {"temperature": request.temperature, "top_p": request.top_p}
    for name, value in sampling.items():
        if value is not None and name in profile.sampling_fields:
            payload[name] = value
    if request.seed is not None and profile.takes_seed:
        payload["seed"] = request.seed
    if request.max_tokens is not None and not adaptations.no_token_field:
        token_field = adaptations.token_field or profile.token_field
        cap = min(output_token_cap, adaptations.output_token_cap or output_token_cap)
        payload[token_field] = max(1, min(request.max_tokens, cap))
    for name in adaptations.dropped_fields:
        payload.pop(name, None)
    return payload


def _response_format(
    style: ResponseFormatStyle, name: str, schema: Mapping[str, Any]
) -> dict[str, Any]:
    if style is ResponseFormatStyle.JSON_SCHEMA_STRICT:
        return {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": True},
        }
    if style is ResponseFormatStyle.JSON_SCHEMA:
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
    if style is ResponseFormatStyle.JSON_OBJECT_SCHEMA:
        return {"type": "json_object", "schema": schema}
    return {"type": "json_object"}


def without_keywords(schema: Mapping[str, Any], keywords: set[str] | frozenset[str]) -> Any:
    """``schema`` with every ``keywords`` entry removed at any depth (property names kept)."""
    if not keywords:
        return schema
    return _strip(schema, keywords, in_properties=False)


def _strip(node: Any, keywords: set[str] | frozenset[str], *, in_properties: bool) -> Any:
    if isinstance(node, Mapping):
        kept: dict[str, Any] = {}
        for key, value in node.items():
            # Under "properties" the keys are the caller's field names, not keywords.
            if not in_properties and key in keywords:
                continue
            kept[key] = _strip(
                value, keywords, in_properties=key == "properties" and not in_properties
            )
        return kept
    if isinstance(node, list):
        return [_strip(item, keywords, in_properties=False) for item in node]
    return node


def schema_keywords(schema: Mapping[str, Any] | None) -> set[str]:
    """Every keyword used anywhere in ``schema`` (property names left out)."""
    found: set[str] = set()

    def walk(node: Any, in_properties: bool) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if not in_properties:
                    found.add(key)
                walk(value, key == "properties" and not in_properties)
        elif isinstance(node, list):
            for item in node:
                walk(item, False)

    if schema is not None:
        walk(schema, False)
    return found
