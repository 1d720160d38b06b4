"""Splits a text too long for one model call into chunks that each fit, with overlap.

Chunks end on a paragraph break where one is close enough, else on a sentence
end, else between words, and only as a last resort inside a word. Each chunk
after the first starts a little before the previous one ended (the overlap), so
a name or a sentence that straddles a boundary is whole in at least one chunk.
Offsets are code points of the whole text; the work is linear in its length.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from tasks.tokens import estimate_tokens

_PARAGRAPH_END = re.compile(r"\n[ \t\r\f\v]*\n\s*")
# Latin sentence ends need a blank after them; CJK full stops and closing quotes do not.
_SENTENCE_END = re.compile(
    "[.!?\u2026]+[\"'\u201d\u2019)\\]]*\\s+"
    "|[\u3002\uff01\uff1f]+[\u300d\u300f\u201d\u2019\uff09]*\\s*"
    "|\n\\s*"
)
_WORD_END = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a text: ``text == whole[start:end]``."""

    index: int
    start: int
    end: int
    text: str


def split_text(text: str, max_tokens: int, overlap_tokens: int = 0) -> list[Chunk]:
    """``text`` in chunks of at most about ``max_tokens`` each, neighbours sharing about
    ``overlap_tokens``. A text that fits is one chunk."""
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    if estimate_tokens(text) <= max_tokens:
        return [Chunk(0, 0, len(text), text)]
    overlap_tokens = max(0, min(overlap_tokens, max_tokens // 4))
    fresh_budget = max(1, max_tokens - overlap_tokens)
    chunks: list[Chunk] = []
    start = fresh_from = 0
    for end in _chunk_ends(text, fresh_budget):
        while start < fresh_from and estimate_tokens(text[start:end]) > max_tokens:
            # The overlap does not fit beside this chunk's new material: take half of it.
            start = _word_start(text, start + (fresh_from - start + 1) // 2, fresh_from)
        chunks.append(Chunk(len(chunks), start, end, text[start:end]))
        fresh_from = end
        start = _overlap_start(text, chunks[-1], fresh_from, overlap_tokens)
    return chunks


def _chunk_ends(text: str, budget: int) -> Iterator[int]:
    """Where each chunk's new material ends: pieces packed greedily up to ``budget``."""
    taken = 0
    chunk_end = 0
    for piece_end, tokens in _pieces(text, 0, len(text), budget, level=0):
        if taken and taken + tokens > budget:
            yield chunk_end
            taken = 0
        taken += tokens
        chunk_end = piece_end
    if chunk_end > 0:
        yield chunk_end


_LEVELS = (_PARAGRAPH_END, _SENTENCE_END, _WORD_END)


def _pieces(text: str, start: int, end: int, budget: int, level: int) -> Iterator[tuple[int, int]]:
    """``(end, tokens)`` of consecutive pieces of ``text[start:end]``, none over ``budget``
    unless a single character is; a piece too large is split at the next finer boundary."""
    if level == len(_LEVELS):
        yield from _hard_pieces(text, start, end, budget)
        return
    pattern = _LEVELS[level]
    position = start
    for match in pattern.finditer(text, start, end):
        piece_end = match.end()
        if piece_end <= position:
            continue
        yield from _fitted(text, position, piece_end, budget, level)
        position = piece_end
    if position < end:
        yield from _fitted(text, position, end, budget, level)


def _fitted(text: str, start: int, end: int, budget: int, level: int) -> Iterator[tuple[int, int]]:
    tokens = estimate_tokens(text[start:end])
    if tokens <= budget:
        yield end, tokens
    else:
        yield from _pieces(text, start, end, budget, level + 1)


def _hard_pieces(text: str, start: int, end: int, budget: int) -> Iterator[tuple[int, int]]:
    """A run with no boundary at all (a long token, a script without spaces), cut by size."""
    # Each character costs at most a little over one token, so this many always fit.
    step = max(1, int(budget / 1.3))
    for position in range(start, end, step):
        piece_end = min(end, position + step)
        yield piece_end, estimate_tokens(text[position:piece_end])


def _overlap_start(text: str, previous: Chunk, fresh_from: int, overlap_tokens: int) -> int:
    """Where the next chunk starts: ``overlap_tokens`` back from ``fresh_from``, on a word
    start, never before the previous chunk's start."""
    if overlap_tokens == 0 or fresh_from >= len(text):
        return fresh_from
    tokens = estimate_tokens(previous.text) or 1
    chars_per_token = max(1.0, len(previous.text) / tokens)
    back = min(int(overlap_tokens * chars_per_token), fresh_from - previous.start - 1)
    if back <= 0:
        return fresh_from
    return _word_start(text, fresh_from - back, fresh_from)


def _word_start(text: str, position: int, limit: int) -> int:
    """The first word start at or after ``position`` and before ``limit``, else ``position``
    (or ``limit`` itself once nothing is left between them)."""
    if position >= limit:
        return limit
    if position == 0 or text[position - 1].isspace():
        return position
    space = _WORD_END.search(text, position, limit)
    if space is None or space.end() >= limit:
        return position
    return space.end()
