"""Read a model's reply as real servers give it: reasoning dropped, JSON objects found in prose.

Servers that do not enforce the schema, and reasoning models, wrap the answer in
``<think>`` blocks, prose and fences that need not cover the whole reply. The
candidates are the balanced JSON objects of what remains, in order; the scan
respects strings and escapes and stays linear in the reply's length.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

# Reasoning models (DeepSeek-R1, Qwen3, ...) think inside these tags before answering.
_REASONING_TAGS = "think|thinking|reasoning|reflection"
_REASONING_OPEN = re.compile(rf"\s*<(?P<tag>{_REASONING_TAGS})\b[^>]*>", re.IGNORECASE)
_REASONING_CLOSE = re.compile(rf"</(?:{_REASONING_TAGS})\s*>", re.IGNORECASE)
# The characters that matter when scanning for balanced JSON objects.
_JSON_SIGNIFICANT = re.compile(r'[{}"\\]')
# An unclosed "{" in prose makes the scan restart after it; a few restarts cover
# real answers while keeping the scan linear in the content's length.
_MAX_SCAN_RESTARTS = 8
_BOM = "\ufeff"


class NoJsonObject(ValueError):
    """The reply holds no JSON object at all."""


def strip_reasoning(content: str) -> str:
    """The content without its reasoning: leading ``<think>`` blocks, closed or not.

    A ``</think>`` with no opening tag before any JSON (the chat template opened the
    block) also ends reasoning: everything up to it is dropped.
    """
    text = content.lstrip(_BOM)
    while True:
        opened = _REASONING_OPEN.match(text)
        if opened is None:
            break
        closed = _REASONING_CLOSE.search(text, opened.end())
        if closed is None:
            return ""  # all reasoning, cut off before any answer
        text = text[closed.end() :]
    closed = _REASONING_CLOSE.search(text)
    if closed is not None and "{" not in text[: closed.start()]:
        text = text[closed.end() :]
    return text.strip().lstrip(_BOM)


def _balanced_spans(text: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each outermost balanced ``{...}`` in ``text``, strings respected."""
    position, restarts = 0, 0
    while True:
        start = text.find("{", position)
        if start < 0:
            return
        depth, in_string, skip_to = 0, False, -1
        opened = start
        for found in _JSON_SIGNIFICANT.finditer(text, start):
            index = found.start()
            if index < skip_to:
                continue
            char = text[index]
            if depth == 0:
                if char != "{":
                    continue
                opened = index
            if in_string:
                if char == "\\":
                    skip_to = index + 2
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    yield opened, index + 1
        if depth == 0 or restarts >= _MAX_SCAN_RESTARTS:
            return
        # An opener never closed: what follows it may still hold a whole object.
        restarts += 1
        position = opened + 1


def answer_candidates(content: str) -> Iterator[dict[str, Any]]:
    """Every JSON object the reply may mean as its answer, the likeliest first."""
    text = strip_reasoning(content)
    try:
        whole = orjson.loads(text)
    except orjson.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        yield whole
        return
    for start, end in _balanced_spans(text):
        try:
            candidate = orjson.loads(text[start:end])
        except orjson.JSONDecodeError:
            continue
        if isinstance(candidate, dict):
            yield candidate


def parse_answer(content: str) -> dict[str, Any]:
    """The first JSON object of a reply once reasoning is dropped, whatever surrounds it."""
    for candidate in answer_candidates(content):
        return candidate
    raise NoJsonObject("the answer holds no JSON object")
