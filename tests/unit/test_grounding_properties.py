"""Grounding properties: whatever the text and the mentions, spans are right and fairly shared."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.extract import ExtractRequest, ExtractTask
from tasks.grounding import Grounding, Mention, ground_mentions, is_whole_word

# Words that repeat, names that hide inside longer words, and accented names whose
# normal forms differ.
WORDS = ["Ann", "ann", "Anna", "planning", "Jordan", "Jordanian", "Bob", "Bobby", "the", "met"]
ACCENTED = ["José", "Zoë", "Ångström", "Renée"]
PUNCTUATION = [" ", " ", "  ", "\n", ", ", ". ", " \u201c", "\u201d ", " '", "' ", " \u2014 ", "-"]
TYPES = ["person", "place", "org"]


@st.composite
def texts(draw: st.DrawFn) -> str:
    """A text of repeated words and punctuation, accented words in NFC or NFD."""
    pieces = []
    for _ in range(draw(st.integers(1, 30))):
        word = draw(st.sampled_from(WORDS + ACCENTED))
        form = draw(st.sampled_from(["NFC", "NFD"]))
        pieces.append(unicodedata.normalize(form, word))  # type: ignore[arg-type]
        pieces.append(draw(st.sampled_from(PUNCTUATION)))
    return "".join(pieces)


def perturb(draw: st.DrawFn, span: str) -> str:
    """A mention of ``span`` as a model that does not copy exactly may give it."""
    change = draw(
        st.sampled_from(["none", "upper", "lower", "nfc", "nfd", "quotes", "spaces", "dot"])
    )
    if change == "upper":
        return span.upper()
    if change == "lower":
        return span.lower()
    if change in ("nfc", "nfd"):
        return unicodedata.normalize(change.upper(), span)  # type: ignore[arg-type]
    if change == "quotes":
        return span.replace("\u201c", '"').replace("\u201d", '"').replace("\u2014", "-")
    if change == "spaces":
        return " ".join(span.split())
    if change == "dot":
        return span + "."
    return span


@st.composite
def texts_and_mentions(draw: st.DrawFn) -> tuple[str, list[Mention]]:
    """A text and mentions drawn from its slices (perturbed), in text order, plus strays."""
    text = draw(texts())
    mentions = []
    for _ in range(draw(st.integers(0, 10))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 30)))
        span = draw(st.one_of(st.just(text[start:end]), st.sampled_from(WORDS + ACCENTED)))
        mentions.append(Mention(draw(st.sampled_from(TYPES)), perturb(draw, span)))
    if draw(st.booleans()):
        mentions.append(Mention("person", draw(st.text(max_size=12))))
    return text, mentions


def check_invariant(text: str, result: Grounding, mentions: list[Mention]) -> None:
    for entity in result.entities:
        assert text[entity.start : entity.end] == entity.text
        assert entity.text.strip()
        assert entity.alignment in ("exact", "normalized", "fuzzy")
    keys = [(entity.start, entity.end, entity.type) for entity in result.entities]
    assert keys == sorted(set(keys))
    assert 0 <= result.ungrounded <= len(mentions)
    placed = len(mentions) - result.ungrounded
    assert len(result.entities) <= placed


@settings(max_examples=300, deadline=None)
@given(texts_and_mentions())
def test_every_entity_is_the_slice_of_the_text_it_claims(
    case: tuple[str, list[Mention]],
) -> None:
    text, mentions = case
    result = ground_mentions(text, mentions)
    check_invariant(text, result, mentions)
    for mention in mentions:
        if mention.text.strip() and mention.text.strip() in text:
            # A span found as written is never counted as lost.
            assert any(entity.type == mention.type for entity in result.entities)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.lists(st.tuples(st.sampled_from(TYPES), st.text(max_size=12))))
def test_any_text_and_any_mentions_keep_the_invariant(
    text: str, raw: list[tuple[str, str]]
) -> None:
    mentions = [Mention(kind, span) for kind, span in raw]
    check_invariant(text, ground_mentions(text, mentions), mentions)


def whole_word_occurrences(text: str, word: str) -> list[int]:
    return [
        match.start()
        for match in re.finditer(re.escape(word), text)
        if is_whole_word(text, match.start(), match.end())
    ]


@settings(max_examples=300, deadline=None)
@given(texts(), st.sampled_from(WORDS), st.data())
def test_types_do_not_share_a_span_unless_listed_more_often_than_the_text_holds_it(
    text: str, word: str, data: st.DataObject
) -> None:
    occurrences = whole_word_occurrences(text, word)
    count = data.draw(st.integers(1, max(1, len(occurrences))))
    kinds = data.draw(st.lists(st.sampled_from(TYPES), min_size=count, max_size=count))
    mentions = [Mention(kind, word) for kind in kinds]
    result = ground_mentions(text, mentions)
    check_invariant(text, result, mentions)
    if occurrences:
        starts = [entity.start for entity in result.entities]
        assert len(starts) == len(set(starts)) == count
        assert set(starts) <= set(occurrences)


@settings(max_examples=300, deadline=None)
@given(texts(), st.sampled_from(WORDS + ACCENTED), st.data())
def test_a_whole_word_occurrence_is_chosen_when_one_exists(
    text: str, word: str, data: st.DataObject
) -> None:
    mention = perturb(data.draw, word)
    result = ground_mentions(text, [Mention("person", mention)])
    folded_text = unicodedata.normalize("NFC", text).casefold()
    folded_word = unicodedata.normalize("NFC", word).casefold()
    if whole_word_occurrences(folded_text, folded_word):
        (entity,) = result.entities
        assert is_whole_word(text, entity.start, entity.end)


@st.composite
def wide_texts(draw: st.DrawFn) -> str:
    """Texts mixing ASCII, accents, astral characters and CJK."""
    alphabet = st.sampled_from(["a", "Z", " ", "é", "\u4e2d", "\U0001f600", "\U00010348", "\n"])
    return "x" + "".join(draw(st.lists(alphabet, max_size=40)))


@settings(max_examples=300, deadline=None)
@given(wide_texts(), st.sampled_from(["utf16", "utf8"]), st.data())
def test_offset_unit_offsets_slice_the_encoded_text_to_the_same_string(
    text: str, unit: str, data: st.DataObject
) -> None:
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start + 1, len(text)))
    span = text[start:end]
    request = ExtractRequest.model_validate(
        {"model": "extract", "text": text, "entities": {"x": ""}, "offset_unit": unit}
    )
    result = ExtractTask().postprocess(request, {"entities": [{"type": "x", "text": span}]})
    encoding, width = ("utf-16-le", 2) if unit == "utf16" else ("utf-8", 1)
    encoded = text.encode(encoding, "surrogatepass")
    for entity in result["entities"]:
        piece = encoded[entity["start"] * width : entity["end"] * width]
        assert piece.decode(encoding, "surrogatepass") == entity["text"]
    if span.strip():
        assert result["entities"], "a span copied from the text is always found"
