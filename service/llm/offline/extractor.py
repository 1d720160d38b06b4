"""Entity extraction: pick a recognizer per label from its name and description, then run them."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from service.llm.offline import patterns
from service.llm.offline.language import QUESTION_WORDS, WORD, content_stems, stem, words
from service.llm.offline.patterns import Recognizer, Span

# A keyword in the label's own name counts more than one in its description.
NAME_WEIGHT = 2
DESCRIPTION_WEIGHT = 1


@dataclass(frozen=True, slots=True)
class EntityKind:
    """A kind of entity, the words that ask for it and the recognizer that finds it."""

    name: str
    keywords: frozenset[str]
    recognizer: Recognizer


def _kind(name: str, keywords: str, recognizer: Recognizer) -> EntityKind:
    return EntityKind(name, frozenset(stem(word) for word in keywords.split()), recognizer)


# In order of precedence: earlier kinds win ties and claim their spans first.
KINDS = (
    _kind("email", "email e-mail mail inbox", patterns.find_emails),
    _kind("url", "url urls link website web site homepage domain http", patterns.find_urls),
    _kind(
        "money",
        "money amount price cost total fee payment sum salary revenue balance "
        "currency charge budget value paid refund subtotal tax",
        patterns.find_money,
    ),
    _kind("percent", "percent percentage rate ratio share growth %", patterns.find_percentages),
    _kind(
        "date",
        "date dates day deadline when birthday due time period month year expiry expiration",
        patterns.find_dates,
    ),
    _kind("phone", "phone telephone mobile cell fax tel call", patterns.find_phone_numbers),
    _kind(
        "identifier",
        "number id identifier reference ref code invoice order ticket tracking case sku serial",
        patterns.find_identifiers,
    ),
    _kind(
        "organization",
        "organization organisation company business employer vendor "
        "supplier bank institution firm corporation agency brand merchant university school "
        "publisher manufacturer retailer store org",
        patterns.find_organizations,
    ),
    _kind(
        "location",
        "location place city country where region state town destination "
        "origin venue headquarter site area address",
        patterns.find_locations,
    ),
    _kind(
        "person",
        "person people name individual customer author sender recipient contact "
        "employee ceo founder manager who patient client speaker buyer reviewer agent "
        "executive president director officer human",
        patterns.find_people,
    ),
)


def choose_kind(label: str, description: str) -> EntityKind | None:
    """The kind whose keywords best match the label and its description, if any match."""
    label_stems = content_stems(_spaced(label))
    description_stems = content_stems(description)
    best: EntityKind | None = None
    best_score = 0
    for kind in KINDS:
        score = NAME_WEIGHT * sum(word in kind.keywords for word in label_stems)
        score += DESCRIPTION_WEIGHT * sum(word in kind.keywords for word in description_stems)
        if score > best_score:
            best, best_score = kind, score
    return best


def _spaced(label: str) -> str:
    """A label's words: ``invoice_number`` and ``invoice-number`` read as "invoice number"."""
    return label.replace("_", " ").replace("-", " ")


def find_by_keywords(text: str, label: str, description: str) -> Iterator[Span]:
    """The fallback: capitalised phrases, or words from the description, that share its keywords.

    A lowercase word counts only through the description (its examples), so the
    label "product" does not turn every "product" in the text into an entity.
    """
    label_stems = set(content_stems(_spaced(label), ignore=QUESTION_WORDS))
    description_stems = set(content_stems(description, ignore=QUESTION_WORDS))
    keywords = label_stems | description_stems
    for match in patterns.CAPITALIZED_RUN.finditer(text):
        if any(stem(word) in keywords for word in words(match.group())):
            yield match.span()
    for match in WORD.finditer(text):
        word = match.group()
        word_stem = stem(word)
        if word.islower() and word_stem in description_stems and word_stem not in label_stems:
            yield match.span()


class SpanSet:
    """Non-overlapping spans kept sorted, so an overlap check costs a binary search."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def overlaps(self, start: int, end: int) -> bool:
        # Only the last span starting before ``end`` can reach past ``start``.
        position = bisect_left(self._starts, end)
        return position > 0 and self._ends[position - 1] > start

    def add(self, start: int, end: int) -> None:
        position = bisect_left(self._starts, start)
        self._starts.insert(position, start)
        self._ends.insert(position, end)


def _longest_first(spans: Iterable[Span]) -> list[Span]:
    """Non-overlapping spans, preferring the longer where two overlap, in text order."""
    kept = SpanSet()
    chosen: list[Span] = []
    for start, end in sorted(set(spans), key=lambda span: (span[0] - span[1], span[0])):
        if start < end and not kept.overlaps(start, end):
            kept.add(start, end)
            chosen.append((start, end))
    return sorted(chosen)


def extract_entities(text: str, entities: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(label, span)`` for every entity found, in text order, each span verbatim from ``text``.

    Spans a more specific kind found first (an email address) are not found
    again by a vaguer one (an organization acronym inside the address).
    """
    kind_order = {kind.name: position for position, kind in enumerate(KINDS)}
    planned = [(label, choose_kind(label, description)) for label, description in entities.items()]
    planned.sort(key=lambda item: kind_order[item[1].name] if item[1] else len(KINDS))
    claimed: dict[str, SpanSet] = {}
    found: list[tuple[int, str, str]] = []
    for label, kind in planned:
        if kind is not None:
            kind_name, spans = kind.name, kind.recognizer(text)
        else:
            kind_name, spans = f"keywords:{label}", find_by_keywords(text, label, entities[label])
        others = [span_set for name, span_set in claimed.items() if name != kind_name]
        own = claimed.setdefault(kind_name, SpanSet())
        for start, end in _longest_first(spans):
            if any(other.overlaps(start, end) for other in others):
                continue
            if not own.overlaps(start, end):
                own.add(start, end)
            found.append((start, label, text[start:end]))
    found.sort(key=lambda item: item[0])
    return [(label, span) for _, label, span in found]
