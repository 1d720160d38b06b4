"""Ways to find a span in a text: folding for the normalized matcher, word windows for fuzzy.

Folding maps each character of the text to what it is compared as (case, Unicode
form, quotes, dashes, whitespace runs, abbreviation dots) while remembering where
it came from, so a match in the folded text is a span of the original.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass

# A fuzzy match needs this difflib ratio between the normalized words of the
# mention and of a window of the text's words: 0.85 lets a letter or two differ in
# a name ("Jon Smith" / "John Smith") but not a different word.
FUZZY_THRESHOLD = 0.85
# Fuzzy matching is a last resort and bounded: mentions longer than this are not
# tried, and each mention compares against at most this many windows of text.
FUZZY_MAX_MENTION_CHARS = 200
FUZZY_MAX_MENTION_WORDS = 24
FUZZY_MAX_ANCHORS = 64
# ...and one grounding run tries at most this many mentions fuzzily, so an answer of
# thousands of invented mentions costs milliseconds each, not minutes in all.
FUZZY_MAX_MENTIONS = 256

_QUOTES = {
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u0060\u00b4", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
}
_DASHES = dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-")
# Punctuation a model adds or drops at the end of a mention ("Acme Inc." / "Acme Inc").
_TRAILING_PUNCTUATION = ".,;:!?"
_WORD = re.compile(r"\w+")


def _fold_char(char: str) -> str:
    """One character as the normalized matcher compares it."""
    mapped = _QUOTES.get(char) or _DASHES.get(char)
    if mapped is not None:
        return mapped
    if char.isspace():
        return " "
    folded = unicodedata.normalize("NFKD", char).casefold()
    # Casefolding can leave a string no longer decomposed ("ǰ"); decompose again.
    return unicodedata.normalize("NFKD", folded)


def _abbreviation_dot(text: str, index: int, length: int) -> bool:
    """Whether the "." at ``index`` follows a letter and precedes no letter or digit."""
    if index == 0 or not text[index - 1].isalpha():
        return False
    return index + 1 == length or not text[index + 1].isalnum()


@dataclass(slots=True)
class FoldedText:
    """The text as the normalized matcher sees it, each character mapped to its origin.

    Whitespace runs collapse to one space and an abbreviation dot (after a letter,
    not before a letter or digit) is dropped, so "Dr." and "Dr" compare equal.
    """

    folded: str
    origin: list[int]

    @classmethod
    def of(cls, text: str) -> FoldedText:
        parts: list[str] = []
        origin: list[int] = []
        cache: dict[str, str] = {}
        previous_space = False
        length = len(text)
        for index, char in enumerate(text):
            if char == "." and _abbreviation_dot(text, index, length):
                continue
            folded = cache.get(char)
            if folded is None:
                folded = cache[char] = _fold_char(char)
            if folded == " ":
                if previous_space:
                    continue
                previous_space = True
            else:
                previous_space = False
            parts.append(folded)
            origin.extend([index] * len(folded))
        return cls("".join(parts), origin)

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that folded ``[start, end)`` came from."""
        return self.origin[start], self.origin[end - 1] + 1


def fold_mention(span: str) -> str:
    """A mention as the normalized matcher looks for it."""
    trimmed = span.strip().rstrip(_TRAILING_PUNCTUATION).strip()
    return FoldedText.of(trimmed).folded.strip()


def is_whole_word(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` neither starts nor ends inside a word."""
    starts_clean = start == 0 or not (text[start - 1].isalnum() and text[start].isalnum())
    ends_clean = end == len(text) or not (text[end - 1].isalnum() and text[end].isalnum())
    return starts_clean and ends_clean


def all_finds(haystack: str, needle: str) -> Iterable[int]:
    """Every index where ``needle`` starts in ``haystack``, overlapping ones included."""
    position = haystack.find(needle)
    while position >= 0:
        yield position
        position = haystack.find(needle, position + 1)


class WordWindows:
    """The text's words, for the fuzzy matcher: windows of words near a mention's words."""

    def __init__(self, text: str) -> None:
        self.words = [
            (match.start(), match.end(), FoldedText.of(match.group()).folded)
            for match in _WORD.finditer(text)
        ]
        self.word_starts = [start for start, _, _ in self.words]
        self.anchors: dict[str, list[int]] = {}
        for position, (_, _, word) in enumerate(self.words):
            self.anchors.setdefault(word[:2], []).append(position)

    def closest(self, span: str, cursor: int = 0) -> list[tuple[int, int]]:
        """Windows of the text's words closest to the mention's words, over the threshold.

        A window is anchored on a text word sharing its first two letters with a word
        of the mention, the anchors at or after ``cursor`` (a text offset) first, so
        the cost is bounded by the anchors tried, not the text size.
        """
        if len(span) > FUZZY_MAX_MENTION_CHARS:
            return []
        mention_words = _WORD.findall(fold_mention(span))
        if not mention_words or len(mention_words) > FUZZY_MAX_MENTION_WORDS:
            return []
        target = " ".join(mention_words)
        words = self.words
        from_word = bisect_left(self.word_starts, cursor)
        starts: set[int] = set()
        for offset, word in enumerate(mention_words):
            positions = self.anchors.get(word[:2], [])
            after = bisect_left(positions, from_word)
            # Then from the start of the text, as the aligner's cursor wraps.
            nearest = positions[after : after + FUZZY_MAX_ANCHORS]
            nearest += positions[: min(after, FUZZY_MAX_ANCHORS)]
            starts.update(position - offset for position in nearest[:FUZZY_MAX_ANCHORS])
        ordered = sorted(starts, key=lambda first: (first < from_word, first))
        best: dict[tuple[int, int], float] = {}
        size = len(mention_words)
        for first in ordered[:FUZZY_MAX_ANCHORS]:
            for length in (size - 1, size, size + 1):
                first_word, last_word = max(first, 0), first + length
                if length < 1 or last_word > len(words) or first_word >= last_word:
                    continue
                window = " ".join(word for _, _, word in words[first_word:last_word])
                matcher = difflib.SequenceMatcher(None, target, window, autojunk=False)
                if matcher.real_quick_ratio() < FUZZY_THRESHOLD:
                    continue
                ratio = matcher.ratio()
                if ratio >= FUZZY_THRESHOLD:
                    where = (words[first_word][0], words[last_word - 1][1])
                    best[where] = max(ratio, best.get(where, 0.0))
        if not best:
            return []
        top = max(best.values())
        return sorted(where for where, ratio in best.items() if ratio == top)
