"""Grounding examples: each rule of the aligner, and each tolerance, on a case that needs it."""

from __future__ import annotations

import unicodedata

import pytest

from tasks.extract import ExtractRequest, ExtractTask, converted_offsets
from tasks.grounding import (
    FUZZY_THRESHOLD,
    GroundedEntity,
    Grounding,
    Mention,
    ground_mentions,
)
from tasks.span_matching import FUZZY_MAX_MENTIONS


def ground(text: str, *mentions: tuple[str, str]) -> Grounding:
    return ground_mentions(text, [Mention(kind, span) for kind, span in mentions])


def spans(grounding: Grounding) -> list[tuple[str, str, int, int, str]]:
    return [(e.type, e.text, e.start, e.end, e.alignment) for e in grounding.entities]


def test_each_type_gets_its_own_occurrence_of_a_repeated_word() -> None:
    result = ground("Jordan visited Jordan", ("person", "Jordan"), ("location", "Jordan"))
    assert spans(result) == [
        ("person", "Jordan", 0, 6, "exact"),
        ("location", "Jordan", 15, 21, "exact"),
    ]
    assert result.ungrounded == 0


def test_a_whole_word_found_loosely_beats_a_partial_exact_match() -> None:
    result = ground("The planning was done by Ann.", ("person", "ann"))
    assert spans(result) == [("person", "Ann", 25, 28, "normalized")]


def test_a_partial_match_is_used_only_when_no_whole_word_exists() -> None:
    result = ground("Annual figures.", ("org", "Ann"))
    assert spans(result) == [("org", "Ann", 0, 3, "exact")]


def test_an_occurrence_taken_by_one_type_goes_to_another_only_when_listed_more_often() -> None:
    # One "Paris" in the text, listed twice: both types land on it.
    result = ground("Paris is big.", ("person", "Paris"), ("city", "Paris"))
    assert spans(result) == [
        ("city", "Paris", 0, 5, "exact"),
        ("person", "Paris", 0, 5, "exact"),
    ]


def test_an_unused_loose_occurrence_beats_a_taken_exact_one() -> None:
    result = ground("Jordan visited JORDAN", ("person", "Jordan"), ("location", "Jordan"))
    assert spans(result) == [
        ("person", "Jordan", 0, 6, "exact"),
        ("location", "JORDAN", 15, 21, "normalized"),
    ]


def test_mentions_are_aligned_in_text_order_with_a_cursor() -> None:
    text = "Bank of America opened in America."
    result = ground(text, ("org", "Bank of America"), ("location", "America"))
    # After the bank, the next "America" is the one after it, not the one inside it.
    assert spans(result)[1] == ("location", "America", 26, 33, "exact")
    nested = ground("Bank of America.", ("org", "Bank of America"), ("location", "America"))
    assert spans(nested)[1] == ("location", "America", 8, 15, "exact")


@pytest.mark.parametrize(
    ("text", "mention", "found"),
    [
        ("He met ACME  Widgets\nLtd today", "Acme Widgets Ltd", "ACME  Widgets\nLtd"),
        ("She said \u201cno\u201d twice", '"no"', "\u201cno\u201d"),
        ("It\u2019s Acme\u2019s", "It's Acme's", "It\u2019s Acme\u2019s"),
        ("pages 10\u201312 only", "10-12", "10\u201312"),
        ("Dr Smith left", "Dr. Smith", "Dr Smith"),
        ("Dr. Smith left", "Dr Smith", "Dr. Smith"),
        ("Acme Inc signed", "Acme Inc.", "Acme Inc"),
        ("the \ufb01nal offer", "final", "\ufb01nal"),
    ],
)
def test_normalized_matching_tolerates_case_space_quotes_dashes_and_dots(
    text: str, mention: str, found: str
) -> None:
    (entity,) = ground(text, ("x", mention)).entities
    assert (entity.text, entity.alignment) == (found, "normalized")
    assert text[entity.start : entity.end] == found


@pytest.mark.parametrize(("text_form", "mention_form"), [("NFD", "NFC"), ("NFC", "NFD")])
def test_unicode_normal_forms_match_each_other(text_form: str, mention_form: str) -> None:
    name = "José Álvarez"
    text = "Met " + unicodedata.normalize(text_form, name) + " today"  # type: ignore[arg-type]
    mention = unicodedata.normalize(mention_form, name)  # type: ignore[arg-type]
    (entity,) = ground(text, ("person", mention)).entities
    assert entity.text == unicodedata.normalize(text_form, name)  # type: ignore[arg-type]
    assert entity.alignment == "normalized"
    assert text[entity.start : entity.end] == entity.text


def test_fuzzy_matching_is_a_last_resort_over_the_threshold() -> None:
    result = ground("Mr John Smith called.", ("person", "Jon Smith"))
    assert spans(result) == [("person", "John Smith", 3, 13, "fuzzy")]
    assert FUZZY_THRESHOLD >= 0.8
    far = ground("Mr John Smith called.", ("person", "Jane Smyth"))
    assert far.entities == [] and far.ungrounded == 1


def test_fuzzy_matching_looks_from_the_cursor_first_in_a_long_text() -> None:
    text = "John Smith. " * 100 + "Bob met John Smith."
    result = ground(text, ("person", "Bob"), ("person", "Jon Smith"))
    fuzzy = [entity for entity in result.entities if entity.alignment == "fuzzy"]
    assert [(entity.text, entity.start) for entity in fuzzy] == [("John Smith", len(text) - 11)]


def test_fuzzy_matching_is_tried_for_a_bounded_number_of_mentions_per_run() -> None:
    invented = [("person", f"Zq{n}x Smith") for n in range(FUZZY_MAX_MENTIONS)]
    result = ground("Mr John Smith called.", *invented, ("person", "Jon Smith"))
    assert result.entities == [] and result.ungrounded == FUZZY_MAX_MENTIONS + 1
    found = ground("Mr John Smith called.", *invented[:10], ("person", "Jon Smith"))
    assert [entity.text for entity in found.entities] == ["John Smith"]


def test_mentions_not_in_the_text_and_blank_ones_are_counted_as_ungrounded() -> None:
    result = ground("Ada met Charles.", ("person", "Alan Turing"), ("person", "  "), ("p", "Ada"))
    assert spans(result) == [("p", "Ada", 0, 3, "exact")]
    assert result.ungrounded == 2


def test_same_type_on_the_same_span_collapses() -> None:
    result = ground("Ann.", ("person", "Ann"), ("person", "ann"))
    assert result.entities == [GroundedEntity(0, 3, "person", "Ann", "exact")]


def test_grounding_a_chunk_and_shifting_gives_the_spans_of_the_whole() -> None:
    whole = "Intro. Ann met Bob."
    chunk_start = whole.index("Ann")
    chunk = ground(whole[chunk_start:], ("person", "Ann"), ("person", "Bob"))
    shifted = [(e.start + chunk_start, e.end + chunk_start) for e in chunk.entities]
    assert [whole[start:end] for start, end in shifted] == ["Ann", "Bob"]


def test_long_texts_with_many_repeats_ground_every_listed_occurrence() -> None:
    text = "Ann and Bob. " * 20_000
    mentions = [("person", "Ann"), ("person", "Bob")] * 20_000
    result = ground(text, *mentions)
    assert len(result.entities) == 40_000 and result.ungrounded == 0
    assert result.entities[-1].start == len(text) - len("Bob. ")


def extract_request(text: str, unit: str) -> ExtractRequest:
    return ExtractRequest.model_validate(
        {"model": "extract", "text": text, "entities": {"x": ""}, "offset_unit": unit}
    )


@pytest.mark.parametrize("unit", ["utf16", "utf8"])
def test_offset_unit_gives_offsets_that_slice_the_encoded_text(unit: str) -> None:
    text = "\U0001f600 Zoë met \U0001f680 Ann"
    result = ExtractTask().postprocess(
        extract_request(text, unit), {"entities": [{"type": "x", "text": "Ann"}]}
    )
    (entity,) = result["entities"]
    encoding, width = ("utf-16-le", 2) if unit == "utf16" else ("utf-8", 1)
    encoded = text.encode(encoding)
    assert encoded[entity["start"] * width : entity["end"] * width].decode(encoding) == "Ann"
    assert (entity["start"], entity["end"]) != (text.index("Ann"), len(text))


def test_offsets_convert_in_one_walk_of_the_text() -> None:
    text = "a\U0001f600b"
    assert converted_offsets(text, [0, 1, 2, 3], "utf16") == {0: 0, 1: 1, 2: 3, 3: 4}
    assert converted_offsets(text, [3, 2], "utf8") == {2: 5, 3: 6}
    assert converted_offsets(text, [2], "codepoint") == {2: 2}
