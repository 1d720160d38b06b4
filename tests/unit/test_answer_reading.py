"""Answers are read as real servers give them: reasoning dropped, the first usable object kept."""

from __future__ import annotations

import pytest

from tasks.answer_reading import answer_candidates, parse_answer, strip_reasoning

OBJECT = '{"summary": "Short."}'


@pytest.mark.parametrize(
    "content",
    [
        OBJECT,
        f"  {OBJECT}\n",
        f"\ufeff{OBJECT}",
        f"<think>\nThe user wants JSON {{like this}}.\n</think>\n\n{OBJECT}",
        f"<THINK>a</THINK><think>b</think>{OBJECT}",
        f"<reasoning>first this</reasoning>{OBJECT}",
        f"<thinking>first this</thinking>\n{OBJECT}",
        f"Okay, so the text is about a refund.\n</think>\n{OBJECT}",
        f"Sure! Here is the JSON you asked for:\n{OBJECT}\nLet me know if you need more.",
        f"Here it is:\n```json\n{OBJECT}\n```\nHope that helps.",
        f"```json\n{OBJECT}\n```",
        f"```\n{OBJECT}",
        f"Braces {{like these}} come first. {OBJECT}",
        f"An unclosed {{ brace in prose, then {OBJECT}",
        f"[{OBJECT}]",
    ],
)
def test_the_answer_is_found_whatever_surrounds_it(content: str) -> None:
    assert parse_answer(content) == {"summary": "Short."}


def test_strings_with_braces_quotes_and_escapes_do_not_end_the_object() -> None:
    content = 'Answer: {"summary": "a } b \\" { c \\\\", "n": {"x": "}"}} trailing }'
    assert parse_answer(content) == {"summary": 'a } b " { c \\', "n": {"x": "}"}}


def test_every_object_is_a_candidate_in_order() -> None:
    content = 'First {"draft": 1} then {"summary": "final"} and {"late": true}'
    assert list(answer_candidates(content)) == [{"draft": 1}, {"summary": "final"}, {"late": True}]


def test_reasoning_never_reaches_the_answer() -> None:
    content = '<think>{"summary": "a draft"}</think>{"summary": "final"}'
    assert list(answer_candidates(content)) == [{"summary": "final"}]
    # An unclosed leading block is all reasoning: cut off before any answer.
    assert strip_reasoning('<think>{"summary": "a draft"} and more') == ""
    assert list(answer_candidates('<think>{"summary": "a draft"} and more')) == []


def test_a_tag_inside_the_answer_stays() -> None:
    content = '{"summary": "Models write <think> tags."}'
    assert parse_answer(content) == {"summary": "Models write <think> tags."}


@pytest.mark.parametrize(
    "content",
    ["", "no json here", '{"summary": "cut off', "[1, 2]", '"just a string"', "<think>hm"],
)
def test_content_without_an_object_has_no_candidate(content: str) -> None:
    assert list(answer_candidates(content)) == []


def test_many_unclosed_braces_are_scanned_a_bounded_number_of_times() -> None:
    # Restarting after every unclosed "{" would make this quadratic (10^10 steps).
    content = "{" * 100_000 + OBJECT
    assert list(answer_candidates(content)) == []
    assert list(answer_candidates("{ " * 5 + OBJECT)) == [{"summary": "Short."}]
