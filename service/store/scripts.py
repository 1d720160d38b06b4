"""Loads the store's Lua scripts, kept as ``.lua`` files next to the modules that run them,
and reads their replies."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_HERE = Path(__file__).resolve().parent


@cache
def lua_script(name: str) -> str:
    """The text of ``name`` in this package; read once, as each store registers it."""
    return (_HERE / name).read_text(encoding="utf-8")


def reply_text(value: bytes | str | None) -> str:
    """A reply value as text (Redis answers bytes; ``None``, a missing value, is empty)."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
