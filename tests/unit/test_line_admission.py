"""The fast line check never admits a line the full check would fault."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.intake.admission import LineAdmission
from service.intake.validation import LineRules, validate_line

MAX_TEXT = 40
RULES = LineRules(max_text_chars=MAX_TEXT, endpoint=None, route_fault=lambda _: None)

# Values near every edge the full check has: blank and whitespace-only strings (all
# the characters Python strips), lengths at the limits, bools for numbers, numbers
# at their bounds, wrong types, nulls.
WHITESPACE = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
edge_text = st.one_of(
    st.text(alphabet=WHITESPACE + "ab", max_size=4),
    st.text(min_size=MAX_TEXT - 1, max_size=MAX_TEXT + 1),
    st.sampled_from(["", " ", "x", "\x1c", "\u3000", "a\u2028", "\u200b"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, 1, 2, -1, 0.0, 1.0, 2.0, 2.5, 1e-9, 10**6, 10**6 + 1, 2**63, -(2**63)]),
    st.floats(allow_nan=False, allow_infinity=False),
    edge_text,
)
labels = st.lists(
    st.dictionaries(
        st.sampled_from(["name", "rubric", "weight", "aggregate"]),
        st.one_of(edge_text, scalars, st.sampled_from(["any", "all", "majority", "most"])),
        max_size=4,
    ),
    max_size=4,
)
entities = st.dictionaries(edge_text, st.one_of(edge_text, scalars), max_size=3)
field_values = {
    "model": st.sampled_from(["summarize", "extract", "classify", "other", 3]),
    "text": st.one_of(edge_text, scalars),
    "instructions": st.one_of(edge_text, scalars),
    "temperature": scalars,
    "top_p": scalars,
    "seed": scalars,
    "max_tokens": scalars,
    "entities": st.one_of(entities, scalars, labels),
    "labels": st.one_of(labels, scalars, entities),
    "document": scalars,
    "prompt_slug": scalars,
    "passes": st.one_of(scalars, st.sampled_from([1, 2, 3, 4])),
    "offset_unit": st.one_of(scalars, st.sampled_from(["codepoint", "utf16", "utf8", "bytes"])),
}


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.sets(st.sampled_from(sorted(field_values)), max_size=6))
    body = {name: draw(field_values[name]) for name in names}
    if draw(st.booleans()):
        body["model"] = draw(st.sampled_from(["summarize", "extract", "classify"]))
        body["text"] = draw(edge_text)
    return body


@st.composite
def lines(draw: st.DrawFn) -> Any:
    line: dict[str, Any] = {
        "custom_id": draw(
            st.one_of(st.from_regex(r"[A-Za-z0-9_.:\-]{0,66}", fullmatch=True), scalars)
        ),
        "method": draw(st.sampled_from(["POST", "GET", None])),
        "url": draw(st.sampled_from(["/v1/chat/completions", "/v1/embeddings", "/x", None])),
        "body": draw(st.one_of(bodies(), scalars)),
    }
    for name in draw(st.sets(st.sampled_from(sorted(line)), max_size=1)):
        del line[name]
    if draw(st.integers(0, 9)) == 0:
        line["extra"] = 1
    return line


@settings(max_examples=3000, deadline=None)
@given(line=lines())
def test_an_admitted_line_has_no_fault(line: Any) -> None:
    admitted = LineAdmission(RULES.endpoint, MAX_TEXT).admits(line, 100)
    if admitted:
        assert validate_line(line, 1, RULES, set()) == []


def good(body: dict[str, Any]) -> dict[str, Any]:
    return {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": body}


@pytest.mark.parametrize(
    "body",
    [
        {"model": "summarize", "text": "A text.", "max_tokens": 20, "temperature": 0},
        {"model": "extract", "text": "A text.", "entities": {"person": "A person."}},
        {"model": "classify", "text": "A text.", "labels": [{"name": "a", "rubric": "Is it?"}]},
    ],
)
def test_ordinary_task_lines_are_admitted(body: dict[str, Any]) -> None:
    assert validate_line(good(body), 1, RULES, set()) == []
    assert LineAdmission(None, MAX_TEXT).admits(good(body), 100)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "summarize", "text": "\x1c\u3000 "},
        {"model": "summarize", "text": "x" * (MAX_TEXT + 1)},
        {"model": "summarize", "text": "A text.", "extra": 1},
        {"model": "classify", "text": "t", "labels": [{"name": "a", "rubric": "?"}] * 2},
        {"model": "classify", "text": "t", "labels": [{"name": "\x1f", "rubric": "?"}]},
        {"model": "extract", "text": "t", "entities": {" ": "blank name"}},
        {"model": "summarize", "text": "t", "max_tokens": True},
        {"model": "summarize", "text": "t", "prompt_slug": "p"},
    ],
)
def test_lines_with_a_fault_are_left_to_the_full_check(body: dict[str, Any]) -> None:
    assert validate_line(good(body), 1, RULES, set()) != []
    assert not LineAdmission(None, MAX_TEXT).admits(good(body), 100)


def test_not_blank_means_what_python_strip_means() -> None:
    admission = LineAdmission(None, 10)
    for code in range(0x3100):
        text = chr(code)
        body = {"model": "summarize", "text": text}
        assert admission.admits(good(body), 100) == bool(text.strip()), hex(code)


def test_a_large_line_with_a_huge_object_is_left_to_the_full_check() -> None:
    body = {"model": "classify", "text": "t", "labels": [{}] * 1000}
    assert not LineAdmission(None, MAX_TEXT).admits(good(body), 10**6)


@settings(max_examples=500, deadline=None)
@given(
    block=st.lists(
        st.one_of(lines(), st.just(good({"model": "summarize", "text": "A."}))), max_size=5
    )
)
def test_a_block_is_admitted_exactly_when_each_of_its_lines_is(block: list[Any]) -> None:
    admission = LineAdmission(None, MAX_TEXT)
    assert admission.admits_all(block, 100) == all(admission.admits(item, 100) for item in block)


def test_a_block_with_a_large_line_is_left_to_the_line_by_line_check() -> None:
    block = [good({"model": "summarize", "text": "A."})]
    assert not LineAdmission(None, MAX_TEXT).admits_all(block, 10**6)
