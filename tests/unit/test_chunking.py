"""Chunks cover the whole text, each fits its budget, neighbours overlap, boundaries are natural."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.chunking import split_text
from tasks.tokens import estimate_tokens

SENTENCES = [
    "The council approved the budget on Monday.",
    "Road repairs get most of it!",
    "Was the vote close?",
    "合同的第一条规定了双方的权利和义务。",
    "Ann Lee signed for Northwind Traders Ltd.",
]


@st.composite
def documents(draw: st.DrawFn) -> str:
    paragraphs = draw(
        st.lists(
            st.lists(st.sampled_from(SENTENCES), min_size=1, max_size=12).map(" ".join),
            min_size=1,
            max_size=30,
        )
    )
    return "\n\n".join(paragraphs)


@settings(max_examples=80, deadline=None)
@given(documents(), st.integers(min_value=20, max_value=400), st.integers(0, 60))
def test_chunks_cover_the_text_in_order_and_fit(text: str, budget: int, overlap: int) -> None:
    chunks = split_text(text, budget, overlap)
    assert chunks[0].start == 0
    assert chunks[-1].end == len(text)
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end]
        assert estimate_tokens(chunk.text) <= budget + 2
    for before, after in itertools.pairwise(chunks):
        # No gap, always progress.
        assert before.start < after.start <= before.end


def test_a_text_that_fits_is_one_chunk() -> None:
    text = " ".join(SENTENCES)
    assert [(c.start, c.end) for c in split_text(text, 10_000, 100)] == [(0, len(text))]


def test_chunks_end_on_paragraph_breaks_when_paragraphs_fit() -> None:
    paragraphs = [" ".join([SENTENCES[0]] * 5) for _ in range(20)]
    text = "\n\n".join(paragraphs)
    chunks = split_text(text, 120, 0)
    assert len(chunks) > 1
    for chunk in chunks[:-1]:
        assert text[chunk.end - 2 : chunk.end] == "\n\n"


def test_chunks_end_on_sentence_ends_inside_a_long_paragraph() -> None:
    text = " ".join(SENTENCES[i % 3] for i in range(300))
    chunks = split_text(text, 100, 0)
    assert len(chunks) > 1
    for chunk in chunks[:-1]:
        assert chunk.text.rstrip()[-1] in ".!?"


def test_overlap_repeats_the_end_of_the_previous_chunk_from_a_word_start() -> None:
    text = " ".join(SENTENCES[i % 3] for i in range(300))
    chunks = split_text(text, 100, 20)
    for before, after in itertools.pairwise(chunks):
        assert after.start < before.end
        assert text[after.start - 1].isspace()


def test_a_text_with_no_boundary_is_cut_by_size() -> None:
    text = "x" * 50_000
    chunks = split_text(text, 500, 50)
    assert (
        "".join(
            c.text[(prev.end - c.start) if prev else 0 :]
            for prev, c in zip([None, *chunks], chunks, strict=False)
        )
        == text
    )
    assert all(estimate_tokens(c.text) <= 502 for c in chunks)
