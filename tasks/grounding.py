"""Ground extracted mentions in their text: a pure function of (text, mentions) to spans.

Mentions are aligned in the order the model gave them, with a cursor, the way
langextract aligns them: a model lists mentions in text order, so the next one is
looked for from where the last one ended, then from the start. Each mention is looked up with ever
looser matchers, exact, then normalized (case, whitespace, quotes, dashes, Unicode
form, abbreviation dots), then fuzzy, and among the occurrences found one is chosen
by, in this order:

1. a whole-word occurrence over one inside a longer word, whatever matcher found it;
2. an occurrence no other mention was given over one already given, so "Jordan
   visited Jordan" (person, then location) puts each on its own "Jordan";
3. the stricter matcher;
4. at or after the cursor over before it, then the earliest.

An occurrence is given twice only when the model listed a span more often than the
text holds it. Every span is a slice of the original text (``text[start:end]``,
offsets in code points), so chunked callers can shift the offsets afterwards.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Alignment = Literal["exact", "normalized", "fuzzy"]
ALIGNMENT_RANK: dict[Alignment, int] = {"exact": 0, "normalized": 1, "fuzzy": 2}

# A fuzzy match needs this difflib ratio between the normalized words of the
# mention and of a window of the text's words: 0.85 lets a letter or two differ in
# a name ("Jon Smith" / "John Smith") but not a different word.
FUZZY_THRESHOLD = 0.85
# Fuzzy matching is a last resort and bounded: mentions longer than this are not
# tried, and each mention compares against at most this many windows of text.
FUZZY_MAX_MENTION_CHARS = 200
FUZZY_MAX_MENTION_WORDS = 24
FUZZY_MAX_ANCHORS = 64

_QUOTES = {
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u0060\u00b4", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
}
_DASHES = dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-")
# Punctuation a model adds or drops at the end of a mention ("Acme Inc." / "Acme Inc").
_TRAILING_PUNCTUATION = ".,;:!?"
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Mention:
    """One mention as the model gave it: its type and its text."""

    type: str
    text: str


@dataclass(frozen=True, slots=True, order=True)
class GroundedEntity:
    """A mention located in the text: ``text[start:end]`` is its ``text``."""

    start: int
    end: int
    type: str
    text: str
    alignment: Alignment


@dataclass(frozen=True, slots=True)
class Grounding:
    """The located entities, in text order, and how many mentions were not found."""

    entities: list[GroundedEntity]
    ungrounded: int


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
class _FoldedText:
    """The text as the normalized matcher sees it, each character mapped to its origin.

    Whitespace runs collapse to one space and an abbreviation dot (after a letter,
    not before a letter or digit) is dropped, so "Dr." and "Dr" compare equal.
    """

    folded: str
    origin: list[int]

    @classmethod
    def of(cls, text: str) -> _FoldedText:
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
    return _FoldedText.of(trimmed).folded.strip()


def is_whole_word(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` neither starts nor ends inside a word."""
    starts_clean = start == 0 or not (text[start - 1].isalnum() and text[start].isalnum())
    ends_clean = end == len(text) or not (text[end - 1].isalnum() and text[end].isalnum())
    return starts_clean and ends_clean


def _all_finds(haystack: str, needle: str) -> Iterable[int]:
    """Every index where ``needle`` starts in ``haystack``, overlapping ones included."""
    position = haystack.find(needle)
    while position >= 0:
        yield position
        position = haystack.find(needle, position + 1)


@dataclass(slots=True)
class _Tiers:
    """The occurrences of one span by (whole word, matcher rank), each list in text order."""

    spans: dict[tuple[bool, int], list[tuple[int, int]]] = field(default_factory=dict)

    def add(self, whole_word: bool, rank: int, start: int, end: int) -> None:
        self.spans.setdefault((whole_word, rank), []).append((start, end))

    def __bool__(self) -> bool:
        return bool(self.spans)

    def has_whole_word(self) -> bool:
        return any(whole for whole, _ in self.spans)


def _first_free(
    spans: list[tuple[int, int]], cursor: int, given: set[tuple[int, int]]
) -> tuple[int, int] | None:
    """The first span not yet given at or after the cursor, else the first before it.

    Skipping costs one step per span already given, so a run stays near linear.
    """
    middle = bisect_left(spans, (cursor, -1))
    for index in range(middle, len(spans)):
        if spans[index] not in given:
            return spans[index]
    for index in range(middle):
        if spans[index] not in given:
            return spans[index]
    return None


def _last_before(spans: list[tuple[int, int]], cursor: int) -> tuple[int, int]:
    """The last span starting before the cursor, else the first: where a repeat belongs."""
    middle = bisect_left(spans, (cursor, -1))
    return spans[middle - 1] if middle > 0 else spans[0]


RANK_ALIGNMENT: dict[int, Alignment] = {rank: name for name, rank in ALIGNMENT_RANK.items()}


@dataclass(slots=True)
class _Aligner:
    """The state of one grounding run: the text's views, found spans and given spans."""

    text: str
    _folded: _FoldedText | None = None
    _words: list[tuple[int, int, str]] | None = None
    _anchors: dict[str, list[int]] | None = None
    _exact: dict[str, _Tiers] = field(default_factory=dict)
    _loose: dict[str, _Tiers] = field(default_factory=dict)
    given: set[tuple[int, int]] = field(default_factory=set)

    @property
    def folded(self) -> _FoldedText:
        # Built only when some mention is not found as written.
        if self._folded is None:
            self._folded = _FoldedText.of(self.text)
        return self._folded

    def place(self, span: str, cursor: int) -> tuple[int, int, Alignment] | None:
        """Where ``span`` goes given the spans handed out so far; ``None``: nowhere."""
        tiers = self._exact.get(span)
        if tiers is None:
            tiers = self._exact[span] = self._exact_tiers(span)
        free = _first_free(tiers.spans.get((True, 0), []), cursor, self.given)
        if free is not None:
            return (*free, "exact")
        # The looser matchers are tried only when the exact one has no free whole word.
        loose = self._loose.get(span)
        if loose is None:
            loose = self._loose[span] = self._loose_tiers(span, tiers)
        tiers = _merged(tiers, loose)
        if not tiers:
            return None
        whole = tiers.has_whole_word()
        keys = sorted(key for key in tiers.spans if key[0] == whole)
        for key in keys:
            free = _first_free(tiers.spans[key], cursor, self.given)
            if free is not None:
                return (*free, RANK_ALIGNMENT[key[1]])
        # Every occurrence is given already: the model listed the span more often.
        key = keys[0]
        return (*_last_before(tiers.spans[key], cursor), RANK_ALIGNMENT[key[1]])

    def _exact_tiers(self, span: str) -> _Tiers:
        tiers = _Tiers()
        for start in _all_finds(self.text, span):
            end = start + len(span)
            tiers.add(is_whole_word(self.text, start, end), 0, start, end)
        return tiers

    def _loose_tiers(self, span: str, exact: _Tiers) -> _Tiers:
        """Occurrences the normalized matcher finds that the exact one did not; else fuzzy."""
        known = {where for spans in exact.spans.values() for where in spans}
        tiers = _Tiers()
        needle = fold_mention(span)
        if needle:
            folded = self.folded
            for folded_start in _all_finds(folded.folded, needle):
                start, end = folded.original_span(folded_start, folded_start + len(needle))
                if (start, end) not in known and self.text[start:end].strip():
                    known.add((start, end))
                    tiers.add(is_whole_word(self.text, start, end), 1, start, end)
        if not tiers and not exact:
            for start, end in self._fuzzy(span):
                tiers.add(True, 2, start, end)
        for spans in tiers.spans.values():
            spans.sort()
        return tiers

    def _word_index(self) -> tuple[list[tuple[int, int, str]], dict[str, list[int]]]:
        if self._words is None or self._anchors is None:
            words = [
                (match.start(), match.end(), _FoldedText.of(match.group()).folded)
                for match in _WORD.finditer(self.text)
            ]
            anchors: dict[str, list[int]] = {}
            for position, (_, _, word) in enumerate(words):
                anchors.setdefault(word[:2], []).append(position)
            self._words, self._anchors = words, anchors
        return self._words, self._anchors

    def _fuzzy(self, span: str) -> list[tuple[int, int]]:
        """Windows of the text's words closest to the mention's words, over the threshold.

        A window is anchored on a text word sharing its first two letters with a word
        of the mention, so the cost is bounded by the anchors tried, not the text size.
        """
        if len(span) > FUZZY_MAX_MENTION_CHARS:
            return []
        mention_words = _WORD.findall(fold_mention(span))
        if not mention_words or len(mention_words) > FUZZY_MAX_MENTION_WORDS:
            return []
        target = " ".join(mention_words)
        words, anchors = self._word_index()
        starts: set[int] = set()
        for offset, word in enumerate(mention_words):
            for position in anchors.get(word[:2], [])[:FUZZY_MAX_ANCHORS]:
                starts.add(position - offset)
        best: dict[tuple[int, int], float] = {}
        size = len(mention_words)
        for first in sorted(starts)[:FUZZY_MAX_ANCHORS]:
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


def _merged(exact: _Tiers, loose: _Tiers) -> _Tiers:
    if not loose:
        return exact
    if not exact:
        return loose
    return _Tiers({**exact.spans, **loose.spans})


def ground_mentions(text: str, mentions: Sequence[Mention]) -> Grounding:
    """Locate each mention in ``text``; see the module docstring for how one is chosen.

    Mentions that cannot be located (or are blank) are counted in ``ungrounded``. The
    same type on the same span collapses into one entity.
    """
    aligner = _Aligner(text)
    entities: set[GroundedEntity] = set()
    ungrounded = 0
    cursor = 0
    for mention in mentions:
        span = mention.text.strip()
        placed = aligner.place(span, cursor) if span else None
        if placed is None:
            ungrounded += 1
            continue
        start, end, alignment = placed
        aligner.given.add((start, end))
        cursor = end
        entities.add(GroundedEntity(start, end, mention.type, text[start:end], alignment))
    # A type on a span found by two matchers keeps the strictest way it was found.
    strictest: dict[tuple[int, int, str], GroundedEntity] = {}
    for entity in entities:
        key = (entity.start, entity.end, entity.type)
        kept = strictest.get(key)
        if kept is None or ALIGNMENT_RANK[entity.alignment] < ALIGNMENT_RANK[kept.alignment]:
            strictest[key] = entity
    return Grounding(sorted(strictest.values()), ungrounded)
