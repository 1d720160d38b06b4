"""extract grounding through the task, as properties: whatever the text and mentions, offsets hold.

Texts are built with repeated words, names inside longer words, mixed quotes and
normal forms; mentions are drawn from the text, some perturbed as careless models copy
them. Results come from the task itself (``postprocess``), as a line gets them.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.execute import parse_task_body

LABELS = ("person", "place", "thing")
# Words that are names, words that hide a name inside them, and plain filler.
NAMES = ("Ann", "Jordan", "O'Neil", "Zoë", "José", "Lee")
HIDING = ("planning", "annual", "Jordanian", "Leeds", "manner")
FILLER = ("met", "in", "and", "the", "visited", "with", "—", "“quoted”", "café", "🙂")
OFFSET_UNITS = ("codepoint", "utf16", "utf8")
ALIGNMENTS = {"exact", "normalized", "fuzzy"}

words = st.lists(st.sampled_from(NAMES + HIDING + FILLER), min_size=1, max_size=14)
normal_forms = st.sampled_from(("NFC", "NFD"))


def ground(text: str, mentions: list[tuple[str, str]], offset_unit: str | None = None) -> Any:
    body: dict[str, Any] = {
        "model": "extract",
        "text": text,
        "entities": {label: "" for label in LABELS},
    }
    if offset_unit is not None:
        body["offset_unit"] = offset_unit
    task, request = parse_task_body(body)
    answer = {"entities": [{"type": kind, "text": span} for kind, span in mentions]}
    return task.postprocess(request, answer)


def whole_word(text: str, start: int, end: int) -> bool:
    before = start == 0 or not (text[start - 1].isalnum() and text[start].isalnum())
    after = end == len(text) or not (text[end - 1].isalnum() and text[end].isalnum())
    return before and after


def careless(span: str, how: int) -> str:
    """``span`` as a model might copy it: other case, spaces, quotes or normal form."""
    if how == 1:
        return span.upper()
    if how == 2:
        return span.replace(" ", "  ")
    if how == 3:
        return span.replace("'", "\u2019")
    if how == 4:
        return unicodedata.normalize("NFD", span)
    return span


@st.composite
def texts_with_mentions(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    """A text and mentions of some of its words (perturbed or not), in text order."""
    chosen = draw(words)
    text = unicodedata.normalize(draw(normal_forms), " ".join(chosen))
    # A mention names something: a word with a letter or digit in it, not a lone dash.
    spans = [
        match for match in re.finditer(r"\S+", text) if any(c.isalnum() for c in match.group())
    ]
    if not spans:
        return text, []
    picked = draw(st.lists(st.sampled_from(spans), max_size=5, unique_by=lambda m: m.start()))
    mentions = [
        (draw(st.sampled_from(LABELS)), careless(match.group(), draw(st.integers(0, 4))))
        for match in sorted(picked, key=lambda m: m.start())
    ]
    return text, mentions


@settings(max_examples=150, deadline=None)
@given(texts_with_mentions())
def test_every_entity_is_the_slice_of_the_text_at_its_offsets(
    case: tuple[str, list[tuple[str, str]]],
) -> None:
    text, mentions = case
    result = ground(text, mentions)
    assert isinstance(result["ungrounded"], int)
    assert len(result["entities"]) + result["ungrounded"] == len(mentions)
    for entity in result["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"]
        assert entity["alignment"] in ALIGNMENTS
        assert entity["type"] in LABELS


@settings(max_examples=150, deadline=None)
@given(texts_with_mentions())
def test_mentions_drawn_from_the_text_are_all_grounded(
    case: tuple[str, list[tuple[str, str]]],
) -> None:
    """Case, spacing, quotes and normal form never make a mention that is there vanish."""
    text, mentions = case
    result = ground(text, mentions)
    assert result["ungrounded"] == 0, (text, mentions, result)
    for entity, (_, span) in zip(result["entities"], mentions, strict=True):
        if entity["text"] == span:
            assert entity["alignment"] == "exact", (text, span, entity)
        else:
            assert entity["alignment"] in {"normalized", "fuzzy"}, (text, span, entity)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(FILLER), min_size=0, max_size=4),
    st.integers(1, 3),
    st.lists(st.sampled_from(LABELS), min_size=1, max_size=3),
)
def test_entities_of_different_types_do_not_share_an_occurrence(
    filler: list[str], repeats: int, types: list[str]
) -> None:
    """ "Jordan visited Jordan": each listed mention takes an occurrence of its own."""
    text = " visited ".join(["Jordan"] * repeats) + " " + " ".join(filler)
    mentions = [(kind, "Jordan") for kind in types[:repeats]]
    result = ground(text.strip(), mentions)
    spans = [(entity["start"], entity["end"]) for entity in result["entities"]]
    assert len(spans) == len(mentions)
    assert len(set(spans)) == len(spans), result


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([("Ann", "planning"), ("Lee", "Leeds"), ("Jordan", "Jordanian")]),
    st.booleans(),
    st.sampled_from(("lower", "upper", "same")),
)
def test_a_whole_word_occurrence_beats_one_inside_a_word(
    pair: tuple[str, str], hiding_first: bool, case: str
) -> None:
    name, hiding = pair
    parts = [f"the {hiding} meeting", f"with {name} today"]
    text = " ".join(parts if hiding_first else reversed(parts))
    span = {"lower": name.lower(), "upper": name.upper(), "same": name}[case]
    result = ground(text, [("person", span)])
    [entity] = result["entities"]
    assert whole_word(text, entity["start"], entity["end"]), (text, entity)
    assert entity["text"] == name


@settings(max_examples=100, deadline=None)
@given(texts_with_mentions(), st.sampled_from(OFFSET_UNITS))
def test_offsets_in_the_clients_unit_slice_the_encoded_text(
    case: tuple[str, list[tuple[str, str]]], unit: str
) -> None:
    """A JavaScript (UTF-16) or byte-oriented (UTF-8) client slices the text directly."""
    text, mentions = case
    in_codepoints = ground(text, mentions)
    in_unit = ground(text, mentions, unit)
    assert [e["text"] for e in in_unit["entities"]] == [
        e["text"] for e in in_codepoints["entities"]
    ]
    encoding, width = {"codepoint": (None, 1), "utf16": ("utf-16-le", 2), "utf8": ("utf-8", 1)}[
        unit
    ]
    for entity in in_unit["entities"]:
        if encoding is None:
            sliced = text[entity["start"] : entity["end"]]
        else:
            encoded = text.encode(encoding)
            sliced = encoded[entity["start"] * width : entity["end"] * width].decode(encoding)
        assert sliced == entity["text"]


def test_a_mention_that_is_not_in_the_text_is_counted_as_ungrounded() -> None:
    result = ground("Ann met Lee in Leeds.", [("person", "Ann"), ("person", "Bartholomew")])
    assert [entity["text"] for entity in result["entities"]] == ["Ann"]
    assert result["ungrounded"] == 1
