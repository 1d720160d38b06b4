"""How deeply a JSON value nests, checked before it is stored or passed on.

orjson reads 1,024 levels but writes only 254, so a body nested deeper than that
could be read, then fail when it is stored or sent upstream. Every entry (JSONL
lines, inline ``requests``, uploaded files, realtime bodies) refuses values
nested deeper than ``TEXTBATCH_MAX_JSON_DEPTH`` up front, naming the line.
"""

from __future__ import annotations

from typing import Any

from service.errors import LineFault


def nesting_depth_over(value: Any, limit: int) -> bool:
    """Whether ``value`` has more than ``limit`` levels of objects and arrays.

    The value itself is level 1 when it is an object or array. Walked with an
    explicit stack, stopping at the first level past the limit.
    """
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > limit:
            return True
        children = container.values() if isinstance(container, dict) else container
        for child in children:
            if isinstance(child, dict | list) and child:
                stack.append((child, depth + 1))
            elif isinstance(child, dict | list) and depth + 1 > limit:
                return True
    return False


def raw_depth_within(raw: bytes, limit: int) -> bool:
    """A quick sure answer for JSON text: True when it has too few brackets to nest deeper.

    Counted in C; brackets inside strings count too, so False only means "walk it".
    """
    return raw.count(b"{") + raw.count(b"[") <= limit


def depth_message(limit: int, what: str = "The line") -> str:
    return f"{what} nests objects and arrays more than {limit} levels deep, the limit."


def depth_fault(line_no: int, line: Any, limit: int) -> LineFault:
    """The fault of a batch line whose body nests more than ``limit`` levels."""
    custom_id = line.get("custom_id") if isinstance(line, dict) else None
    return LineFault(
        line=line_no,
        param="body",
        code="json_too_deep",
        message=depth_message(limit, "The line's body"),
        custom_id=custom_id[:64] if isinstance(custom_id, str) else None,
    )
