"""Ground extracted mentions in their text: a pure function of (text, mentions) to spans.

Mentions are aligned in the order the model gave them, with a cursor, the way
langextract aligns them: a model lists mentions in text order, so the next one is
looked for from where the last one ended, then from the start. Each mention is
looked up with ever looser matchers, exact, then normalized (case, whitespace,
quotes, dashes, Unicode form, abbreviation dots), then fuzzy (``span_matching``),
and among the occurrences found one is chosen by, in this order:

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

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from tasks.span_matching import (
    FUZZY_MAX_MENTIONS,
    FoldedText,
    WordWindows,
    all_finds,
    fold_mention,
    is_whole_word,
)
from tasks.span_matching import FUZZY_THRESHOLD as FUZZY_THRESHOLD

Alignment = Literal["exact", "normalized", "fuzzy"]
ALIGNMENT_RANK: dict[Alignment, int] = {"exact": 0, "normalized": 1, "fuzzy": 2}


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
    _folded: FoldedText | None = None
    _windows: WordWindows | None = None
    _fuzzy_left: int = FUZZY_MAX_MENTIONS
    _exact: dict[str, _Tiers] = field(default_factory=dict)
    _loose: dict[str, _Tiers] = field(default_factory=dict)
    given: set[tuple[int, int]] = field(default_factory=set)

    @property
    def folded(self) -> FoldedText:
        # Built only when some mention is not found as written.
        if self._folded is None:
            self._folded = FoldedText.of(self.text)
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
            loose = self._loose[span] = self._loose_tiers(span, tiers, cursor)
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
        for start in all_finds(self.text, span):
            end = start + len(span)
            tiers.add(is_whole_word(self.text, start, end), 0, start, end)
        return tiers

    def _loose_tiers(self, span: str, exact: _Tiers, cursor: int) -> _Tiers:
        """Occurrences the normalized matcher finds that the exact one did not; else fuzzy."""
        known = {where for spans in exact.spans.values() for where in spans}
        tiers = _Tiers()
        needle = fold_mention(span)
        if needle:
            folded = self.folded
            for folded_start in all_finds(folded.folded, needle):
                start, end = folded.original_span(folded_start, folded_start + len(needle))
                if (start, end) not in known and self.text[start:end].strip():
                    known.add((start, end))
                    tiers.add(is_whole_word(self.text, start, end), 1, start, end)
        if not tiers and not exact and self._fuzzy_left > 0:
            self._fuzzy_left -= 1
            if self._windows is None:
                self._windows = WordWindows(self.text)
            for start, end in self._windows.closest(span, cursor):
                tiers.add(True, 2, start, end)
        for spans in tiers.spans.values():
            spans.sort()
        return tiers


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
