"""The custom_id we send Anthropic for a line: the line's own id, marked with its batch's tag.

Anthropic keeps no metadata on a batch and takes custom_ids of at most 64 characters
from ``[A-Za-z0-9_-]``. The id we send is ``MARK KIND ID``: ``MARK`` is 12 hex digits of
the SHA-256 of the batch's tag (so a batch can be recognised by any of its results),
``KIND`` one character saying how to read the rest, and ``ID`` the line's custom_id,
as it is when it fits the alphabet, else base64url. ``KIND`` also records whether the
answer is the input of the tool forced for a ``response_format``, because reading the
answer back needs to know and the results carry nothing else of the request.

    KIND   ID as is   ID base64url
    plain     p           b
    tool      P           B
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

MAX_CHARS = 64
MARK_CHARS = 12
_ROOM = MAX_CHARS - MARK_CHARS - 1
_ALPHABET = re.compile(r"^[A-Za-z0-9_-]+$")
_KINDS = {(False, False): "p", (False, True): "b", (True, False): "P", (True, True): "B"}
_READ_KINDS = {kind: key for key, kind in _KINDS.items()}


@dataclass(frozen=True, slots=True)
class WireId:
    """A custom_id as read back from a result."""

    mark: str
    custom_id: str
    answer_tool: bool


def tag_mark(tag: str) -> str:
    """The mark every custom_id of the batch submitted with ``tag`` starts with."""
    return hashlib.sha256(tag.encode()).hexdigest()[:MARK_CHARS]


def wire_id(tag: str, custom_id: str, *, answer_tool: bool) -> str:
    """The custom_id sent for line ``custom_id``; ``ValueError`` when it cannot fit."""
    encoded = not _ALPHABET.match(custom_id) or len(custom_id) > _ROOM
    text = _encode(custom_id) if encoded else custom_id
    if not custom_id or len(text) > _ROOM:
        raise ValueError(
            f"custom_id {custom_id[:80]!r} does not fit Anthropic's 64-character custom_id: "
            f"at most {_ROOM} characters of [A-Za-z0-9_-], or {_ROOM * 3 // 4} bytes of others"
        )
    return tag_mark(tag) + _KINDS[(answer_tool, encoded)] + text


def read_wire_id(wire: str) -> WireId | None:
    """The parts of a custom_id ``wire_id`` made, or ``None`` for one it did not make."""
    mark, kind, text = wire[:MARK_CHARS], wire[MARK_CHARS : MARK_CHARS + 1], wire[MARK_CHARS + 1 :]
    if kind not in _READ_KINDS or not text or len(mark) != MARK_CHARS:
        return None
    answer_tool, encoded = _READ_KINDS[kind]
    if not encoded:
        return WireId(mark, text, answer_tool)
    try:
        padded = text + "=" * (-len(text) % 4)
        custom_id = base64.urlsafe_b64decode(padded.encode()).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return WireId(mark, custom_id, answer_tool)


def _encode(custom_id: str) -> str:
    return base64.urlsafe_b64encode(custom_id.encode()).decode().rstrip("=")
